package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/scheduler"
)

// Subscription is a recipe bound to its trigger connection: the unit the
// scheduler polls and the dedup state belongs to.
type Subscription struct {
	// ID is stable across reloads: a hash of the recipe name and the
	// trigger connection (see SubscriptionID).
	ID string
	// Recipe is the recipe in force.
	Recipe *catalog.Recipe
	// Op is the trigger operation.
	Op *catalog.Operation
	// Connection is the trigger's connection.
	Connection string
	// Every is the poll interval.
	Every time.Duration
	// Dedup is the strategy in force (the recipe's or the op's default).
	Dedup string
	// Backfill is how many existing items the first poll fires.
	Backfill int
	// MaxPages caps the pages of one poll (0 = the engine's default).
	MaxPages int
}

// Subscriptions finds the subscription in force by id; the recipe registry
// implements it.
type Subscriptions interface {
	Get(id string) (*Subscription, bool)
}

// SubscriptionID is the stable id of a recipe polled through a connection.
func SubscriptionID(recipe, connection string) string {
	h := sha256.New()
	h.Write([]byte(recipe))
	h.Write([]byte{0})
	h.Write([]byte(connection))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// NewSubscription binds recipe r to its trigger operation in cat.
func NewSubscription(cat *catalog.Catalog, r *catalog.Recipe) (*Subscription, error) {
	op := cat.Op(r.Trigger.Op)
	if op == nil || !op.IsTrigger() {
		return nil, fmt.Errorf("recipe %s: %s is not a trigger", r.Name, r.Trigger.Op)
	}
	strategy := r.Trigger.Dedup
	if strategy == "" {
		strategy = op.Dedup
	}
	every := r.Trigger.Every.Std()
	if every <= 0 {
		return nil, fmt.Errorf("recipe %s: no poll interval", r.Name)
	}
	return &Subscription{
		ID:         SubscriptionID(r.Name, r.Trigger.Connection),
		Recipe:     r,
		Op:         op,
		Connection: r.Trigger.Connection,
		Every:      every,
		Dedup:      strategy,
		Backfill:   r.Trigger.Backfill,
		MaxPages:   r.Trigger.MaxPages,
	}, nil
}

// Params renders the trigger's params for one poll, converted to the
// inputs' declared types as step inputs are (actions.Coerce). A param that
// does not render or convert is an *actions.RenderError naming the input.
func (s *Subscription) Params() (map[string]any, error) {
	out := make(map[string]any, len(s.Recipe.Trigger.Params))
	data := map[string]any{"recipe": s.Recipe.Name}
	for name, v := range s.Recipe.Trigger.Params {
		r, err := v.Render(data)
		if err != nil {
			err = fmt.Errorf("input %s: %w", name, err)
		} else {
			r, err = actions.Coerce(s.Op.Input(name), r)
		}
		if err != nil {
			return nil, &actions.RenderError{Err: fmt.Errorf("recipe %s: trigger %w", s.Recipe.Name, err)}
		}
		out[name] = r
	}
	return out, nil
}

// SchedulerEntries lists subscriptions as the scheduler takes them.
func SchedulerEntries(subs []*Subscription) []scheduler.Entry {
	out := make([]scheduler.Entry, len(subs))
	for i, s := range subs {
		out[i] = scheduler.Entry{ID: s.ID, Every: s.Every}
	}
	return out
}

// keep is how many recent keys the subscription's dedup state holds: one
// for a changing object, the store's default otherwise.
func (s *Subscription) keep() int {
	if s.Dedup == catalog.DedupChanged {
		return 1
	}
	return dedup.DefaultKeep
}
