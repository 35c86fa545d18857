package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/scheduler"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// Subscription is a recipe bound to a tenant: the unit the scheduler polls
// and the dedup state, pauses and history belong to. Subscriptions of one
// recipe share its parsed form; one costs a few hundred bytes.
type Subscription struct {
	// ID is stable across reloads: a hash of the recipe name and the
	// tenant id, or for the default tenant of the trigger connection (see
	// SubscriptionID).
	ID string
	// Tenant is the tenant the recipe runs for; its roles name the
	// connections.
	Tenant *tenant.Tenant
	// Recipe is the recipe in force.
	Recipe *catalog.Recipe
	// Op is the trigger operation.
	Op *catalog.Operation
	// Connection is the trigger's connection (the tenant's connection of
	// the trigger's role).
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

// NewSubscription binds recipe r, which names connection ids, to its
// trigger operation in cat for the default tenant.
func NewSubscription(cat *catalog.Catalog, r *catalog.Recipe) (*Subscription, error) {
	return NewTenantSubscription(cat, r, defaultTenant)
}

// defaultTenant is the built-in tenant whose roles are connection ids.
var defaultTenant = tenant.Default()

// TenantSubscriptionID is the stable id of recipe × tenant.
func TenantSubscriptionID(recipe string, t *tenant.Tenant, triggerConn string) string {
	if t.IsDefault() {
		// Ids from before tenants: the dedup state carries over.
		return SubscriptionID(recipe, triggerConn)
	}
	return SubscriptionID(recipe, "tenant:"+t.ID)
}

// NewTenantSubscription binds recipe r to tenant t and its trigger
// operation in cat.
func NewTenantSubscription(cat *catalog.Catalog, r *catalog.Recipe, t *tenant.Tenant) (*Subscription, error) {
	conn, ok := t.Connection(r.Trigger.Connection)
	if !ok {
		return nil, fmt.Errorf("recipe %s: tenant %s has no %s connection", r.Name, t.ID, r.Trigger.Connection)
	}
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
		ID:         TenantSubscriptionID(r.Name, t, conn),
		Tenant:     t,
		Recipe:     r,
		Op:         op,
		Connection: conn,
		Every:      every,
		Dedup:      strategy,
		Backfill:   r.Trigger.Backfill,
		MaxPages:   r.Trigger.MaxPages,
	}, nil
}

// StepConnection is the connection step i uses: the tenant's connection of
// the step's role.
func (s *Subscription) StepConnection(i int) string {
	role := actions.Connection(s.Recipe, &s.Recipe.Steps[i])
	if c, ok := s.Tenant.Connection(role); ok {
		return c
	}
	return role
}

// Params renders the trigger's params for one poll, converted to the
// inputs' declared types as step inputs are (actions.Coerce). A param that
// does not render or convert is an *actions.RenderError naming the input.
// .connection has only the connection's id and app (see ParamsFor).
func (s *Subscription) Params() (map[string]any, error) {
	return s.ParamsFor(context.Background(), nil)
}

// ParamsFor is Params with look (optional) telling .connection the
// connection's location and company.
func (s *Subscription) ParamsFor(ctx context.Context, look ConnectionLookup) (map[string]any, error) {
	out := make(map[string]any, len(s.Recipe.Trigger.Params))
	data := map[string]any{"recipe": s.Recipe.Name, "tenant": s.Tenant.Data()}
	if s.Recipe.UsesConnection {
		cd, err := connectionData(ctx, look, s.Connection, s.Op.App)
		if err != nil {
			return nil, fmt.Errorf("recipe %s: %w", s.Recipe.Name, err)
		}
		data["connection"] = cd
	}
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

// entry is sub as the scheduler takes it. With shared polls, the
// subscriptions that send the same request (connection, operation and
// parameters) are placed at the same moment of their interval, so they
// share a fresh page instead of one up to an interval old.
func (e *Engine) entry(sub *Subscription) scheduler.Entry {
	en := scheduler.Entry{ID: sub.ID, Every: sub.Every}
	if e.cfg.SharePolls {
		en.Align = sub.requestKey()
	}
	return en
}

// entries lists subs as the scheduler takes them.
func (e *Engine) entries(subs []*Subscription) []scheduler.Entry {
	out := make([]scheduler.Entry, len(subs))
	for i, s := range subs {
		out[i] = e.entry(s)
	}
	return out
}

// requestKey is the same for subscriptions whose polls send the same
// request: one connection, one operation, parameters written alike.
func (s *Subscription) requestKey() string {
	h := sha256.New()
	h.Write([]byte(s.Connection + "\x00" + s.Op.ID + "\x00"))
	names := make([]string, 0, len(s.Recipe.Trigger.Params))
	for name := range s.Recipe.Trigger.Params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h.Write([]byte(name + "=" + s.Recipe.Trigger.Params[name].Key() + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// keep is how many recent keys the subscription's dedup state holds: one
// for a changing object, the store's default otherwise.
func (s *Subscription) keep() int {
	if s.Dedup == catalog.DedupChanged {
		return 1
	}
	return dedup.DefaultKeep
}
