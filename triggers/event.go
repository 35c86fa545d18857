package triggers

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog"
)

// ErrNoItem means a webhook event's payload holds no item where the
// operation's webhooks say.
var ErrNoItem = errors.New("event carries no item")

// EventItem reads the item of a webhook event of op (the payload the app
// POSTed) and keys it by strategy exactly as a poll keys the same object,
// so the item has one identity whichever way it arrives.
func EventItem(op *catalog.Operation, strategy string, payload []byte) (Item, error) {
	if !op.Instant() {
		return Item{}, fmt.Errorf("%s declares no webhook events", op.ID)
	}
	if !gjson.ValidBytes(payload) {
		return Item{}, errors.New("event is not JSON")
	}
	r := gjson.ParseBytes(payload)
	if path := op.Webhooks.Item; path != "" {
		r = r.Get(path)
	}
	if !r.IsObject() {
		return Item{}, fmt.Errorf("%s: %w at %q", op.ID, ErrNoItem, op.Webhooks.Item)
	}
	if strategy == "" {
		strategy = op.Dedup
	}
	switch {
	case strategy == catalog.DedupChanged:
		return Item{}, fmt.Errorf("%s: dedup changed keys by content, which an event does not share with a poll", op.ID)
	case strategy == catalog.DedupUpdated && (op.ItemUpdated == "" || !r.Get(op.ItemUpdated).Exists()):
		// Keyed by a hash of its content instead, the item would not be
		// the one a poll reads: the poll fires it.
		return Item{}, fmt.Errorf("%s: %w: no update time at %q for dedup updated", op.ID, ErrNoItem, op.ItemUpdated)
	}
	keyed := op
	if id := op.WebhookItemID(); id != op.ItemID {
		cp := *op
		cp.ItemID = id
		keyed = &cp
	}
	it, err := keyItem(keyed, strategy, r)
	it.Raw = json.RawMessage(r.Raw)
	if err == nil && strategy == catalog.DedupCursor && it.Time.IsZero() {
		// Keyed by a zero time, the item would not be the one a poll reads.
		return Item{}, fmt.Errorf("%s: %w: no time for dedup cursor", op.ID, ErrNoItem)
	}
	return it, err
}

// EventMatches reports whether an event's item belongs to a poll with
// params: every input the operation's webhooks match that params set must
// equal the item's field.
func EventMatches(op *catalog.Operation, params map[string]any, item Item) bool {
	if op.Webhooks == nil {
		return false
	}
	r := gjson.ParseBytes(item.Raw)
	for input, path := range op.Webhooks.Match {
		want, ok := params[input]
		if !ok || want == nil || fmt.Sprint(want) == "" {
			continue
		}
		if got := r.Get(path); !got.Exists() || got.String() != fmt.Sprint(want) {
			return false
		}
	}
	return true
}
