package catalog

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"go.yaml.in/yaml/v3"
)

// Webhooks declares the webhook events that carry a trigger's items, so a
// recipe whose trigger says instant: true fires on them as they arrive
// (its polls go on as the safety net).
type Webhooks struct {
	// Events are the event types (the payload's type field) whose payload
	// carries one item of the trigger; each must be one of the app's
	// webhook_events.
	Events []string `yaml:"events" json:"events"`
	// Item is the gjson path of the item in the payload; "" means the
	// payload itself (GHL puts most objects' fields at the top level).
	Item string `yaml:"item,omitempty" json:"item,omitempty"`
	// ItemID is the gjson path of the item's id, relative to the item
	// (default: the operation's item_id).
	ItemID string `yaml:"item_id,omitempty" json:"item_id,omitempty"`
	// Match maps an input of the operation to the item field that holds the
	// same value: when a recipe sets that input, an event whose item has
	// another value is not the recipe's (a contact's notes, a pipeline's
	// opportunities). Inputs not listed here do not filter instant items.
	Match map[string]string `yaml:"match,omitempty" json:"match,omitempty"`
}

// Instant reports whether op's items arrive by webhook events as well.
func (op *Operation) Instant() bool { return op.Webhooks != nil && len(op.Webhooks.Events) > 0 }

// ListensTo reports whether events of type carry op's items.
func (op *Operation) ListensTo(typ string) bool {
	return op.Webhooks != nil && slices.Contains(op.Webhooks.Events, typ)
}

// WebhookItemID is the path of an event item's id.
func (op *Operation) WebhookItemID() string {
	if op.Webhooks != nil && op.Webhooks.ItemID != "" {
		return op.Webhooks.ItemID
	}
	return op.ItemID
}

// WebhookEvents returns every event type the apps declare, sorted.
func (c *Catalog) WebhookEvents() []string {
	var out []string
	for _, a := range c.Apps() {
		for _, e := range a.WebhookEvents {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	sort.Strings(out)
	return out
}

// validateWebhooks checks a trigger's webhooks block (n is the operation's
// node).
func validateWebhooks(d *decoder, app *App, op *Operation, n *yaml.Node) {
	w := op.Webhooks
	if w == nil {
		return
	}
	wn := at(n, "webhooks")
	if op.Kind != KindTrigger {
		d.errorAt(wn, "remove it, or make the operation a trigger", "operation %s: webhooks are for triggers", op.ID)
		return
	}
	if len(w.Events) == 0 {
		d.errorAt(wn, "list the event types that carry this trigger's items, e.g. events: [ContactCreate]", "trigger %s: webhooks without events", op.ID)
	}
	en := field(wn, "events")
	seen := map[string]bool{}
	for i, e := range w.Events {
		if seen[e] {
			d.errorAt(nodeIndex(en, i), "remove one of them", "trigger %s: webhook event %s is listed twice", op.ID, e)
		}
		seen[e] = true
		if !slices.Contains(app.WebhookEvents, e) {
			fix := didYouMean(e, app.WebhookEvents)
			if len(app.WebhookEvents) == 0 {
				fix = "declare the app's event types in webhook_events: in " + app.File
			}
			d.errorAt(nodeIndex(en, i), fix, "trigger %s: %q is not one of app %s's webhook events", op.ID, e, app.ID)
		}
	}
	if op.WebhookItemID() == "" && op.Dedup != DedupChanged {
		d.errorAt(wn, "set item_id: to the path of the item's id in the event", "trigger %s: webhook items need an id", op.ID)
	}
	mn := field(wn, "match")
	for _, input := range slices.Sorted(maps.Keys(w.Match)) {
		if op.Input(input) == nil {
			d.errorAt(keyNode(mn, input), "name one of the operation's inputs", "trigger %s: webhook match input %q is not an input", op.ID, input)
		}
		if w.Match[input] == "" {
			d.errorAt(at(mn, input), "write the path of the item field that holds the input's value", "trigger %s: webhook match %s has no path", op.ID, input)
		}
	}
}

// validateInstant checks a recipe trigger's instant flag against its
// operation and dedup strategy (n is the trigger's node).
func validateInstant(d *decoder, c *Catalog, n *yaml.Node, op *Operation, strategy string) {
	if op.Instant() {
		if strategy == DedupChanged {
			d.errorAt(at(n, "instant"), "use dedup: id or updated, or remove instant:",
				"dedup changed keys items by their content, which an event's payload does not share with the API's answer")
		}
		return
	}
	var with []string
	for _, o := range c.Ops() {
		if o.App == op.App && o.Instant() {
			with = append(with, o.ID)
		}
	}
	fix := "remove instant: (the trigger is polled only)"
	if len(with) > 0 {
		fix += fmt.Sprintf(", or use a trigger with webhook events: %s", joinMax(with, 4))
	}
	d.errorAt(at(n, "instant"), fix, "%s declares no webhook events, so it cannot be instant", op.ID)
}

func joinMax(s []string, n int) string {
	out := ""
	for i, v := range s {
		if i == n {
			return out + ", ..."
		}
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}
