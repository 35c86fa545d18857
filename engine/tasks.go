// Package engine runs recipes: it schedules polls, turns new trigger items
// into chain tasks and runs the chains, with Redis and asynq underneath.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// Task type names on the asynq queues.
const (
	// TypePoll polls one subscription for one time slot.
	TypePoll = "poll:run"
	// TypeChain runs a recipe's action chain for one trigger item.
	TypeChain = "chain:run"
)

// QueueName is the asynq queue of base (QueuePoll, QueueChain) for an engine whose Redis keys start with prefix: engines
// with different prefixes on one Redis never take each other's tasks.
func QueueName(prefix, base string) string { return rdb.NewKeys(prefix).Queue(base) }

// DefaultPrefix starts the engine's Redis keys and queue names unless
// another prefix is configured.
const DefaultPrefix = rdb.DefaultPrefix

// Queue names, before the engine's prefix (see QueueName).
const (
	// QueuePoll carries poll tasks.
	QueuePoll = "poll"
	// QueueChain carries chain tasks.
	QueueChain = "chain"
)

// DefaultChainRetention is how long a completed chain task keeps its TaskID
// reserved, so a poll that re-enqueues an item after a crash meets the
// conflict instead of firing twice.
const DefaultChainRetention = 24 * time.Hour

// PollPayload is the payload of a TypePoll task.
type PollPayload struct {
	// Sub is the subscription id.
	Sub string `json:"sub"`
	// Slot is the scheduling slot: the due time in Unix seconds divided by
	// the subscription's interval.
	Slot int64 `json:"slot"`
	// Due is when the poll was due (Unix ms; 0: not known), what its lag
	// is measured from.
	Due int64 `json:"due,omitempty"`
}

// ChainPayload is the payload of a TypeChain task.
type ChainPayload struct {
	// Sub is the subscription id.
	Sub string `json:"sub"`
	// Recipe is the recipe name, for logs and history.
	Recipe string `json:"recipe"`
	// ItemKey is the item's dedup key.
	ItemKey string `json:"item_key"`
	// Item is the trigger item as the API returned it.
	Item json.RawMessage `json:"item"`
	// Time is the item's time (update or creation time; the poll time when
	// the item has none).
	Time time.Time `json:"time"`
	// Enqueued is when the poll put the chain on the queue; a chain of a
	// paused connection waits from then for at most Chainer.PauseHold.
	Enqueued time.Time `json:"enqueued,omitzero"`
	// Received is when the webhook that fired the chain was accepted; zero
	// for an item found by a poll.
	Received time.Time `json:"received,omitzero"`
}

// PollTaskID is the asynq TaskID of the poll of sub: one per subscription,
// so a slot enqueued while the previous poll is still in the queue meets a
// TaskID conflict instead of queueing behind it.
func PollTaskID(sub string) string {
	return "poll:" + sub
}

// ChainTaskID is the asynq TaskID of the chain for one item of a
// subscription: a hash of the subscription id and the item key.
func ChainTaskID(sub, itemKey string) string {
	h := sha256.New()
	h.Write([]byte(sub))
	h.Write([]byte{0})
	h.Write([]byte(itemKey))
	return "chain:" + hex.EncodeToString(h.Sum(nil)[:16])
}
