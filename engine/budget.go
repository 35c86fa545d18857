package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// resourceTTL is how long LimiterBudget trusts what a connection resolved
// to: a connection's app and location do not change while it lives.
const resourceTTL = time.Minute

// LimiterBudget is the Budget of the shared rate limiter: it resolves a
// connection to the resource its calls count against (a GHL location or
// company, a referral-app account) and asks the limiter how far that
// resource's polls must be stretched for its daily budget to last the day.
// The resolution is kept for a minute, so a poll does not resolve its
// connection twice (here and in the transport).
type LimiterBudget struct {
	Limiter     *ratelimit.Limiter
	Connections transport.Resolver

	mu    sync.Mutex
	known map[string]resolvedResource
}

type resolvedResource struct {
	app, resource string
	at            time.Time
}

// Stretch implements Budget.
func (b *LimiterBudget) Stretch(ctx context.Context, connection string, every time.Duration) (time.Duration, string, error) {
	r, err := b.resolve(ctx, connection)
	if err != nil {
		return every, "", err
	}
	return b.Limiter.Stretch(ctx, r.app, r.resource, every)
}

// resolve returns the app and resource of connection, kept for resourceTTL.
func (b *LimiterBudget) resolve(ctx context.Context, connection string) (resolvedResource, error) {
	b.mu.Lock()
	r, ok := b.known[connection]
	b.mu.Unlock()
	if ok && time.Since(r.at) <= resourceTTL {
		return r, nil
	}
	res, err := b.Connections.Resolve(ctx, connection)
	if err != nil {
		return r, fmt.Errorf("budget of %s: %w", connection, err)
	}
	r = resolvedResource{app: res.Conn.App, resource: transport.Resource(&res.Conn, nil), at: time.Now()}
	b.mu.Lock()
	if b.known == nil {
		b.known = map[string]resolvedResource{}
	}
	b.known[connection] = r
	b.mu.Unlock()
	return r, nil
}

// Stretch is how many times its interval a subscription waits between
// polls, and why.
type Stretch struct {
	Factor float64
	Reason string
	// Phase places the subscription in its stretched interval (0 to 1):
	// the subscriptions of a resource spread evenly over it, so their
	// requests arrive at the pace the limiter lets through instead of in
	// bunches that wait.
	Phase float64
}

// Planner plans the schedule against the API budgets: it returns the
// stretch of every subscription whose polls must be spaced out (those
// missing poll at their interval). An Engine whose Budget is also a
// Planner stretches its schedule instead of skipping slots at poll time.
type Planner interface {
	Plan(ctx context.Context, subs []*Subscription) (map[string]Stretch, error)
}

// Plan implements Planner: the subscriptions are grouped by the resource
// their calls count against; a resource whose subscriptions ask for more
// requests a second (one per poll) than its burst budget lets through has
// all of them stretched by the same factor, so none starves, and further
// when its daily budget runs low (see ratelimit.Limiter.Demand). A
// connection that cannot be resolved is left unstretched.
func (b *LimiterBudget) Plan(ctx context.Context, subs []*Subscription) (map[string]Stretch, error) {
	type group struct {
		app, resource string
		perSecond     float64
		subs          []*Subscription
	}
	groups := map[resolvedResource]*group{}
	for _, s := range subs {
		r, err := b.resolve(ctx, s.Connection)
		if err != nil || s.Every <= 0 {
			continue
		}
		k := resolvedResource{app: r.app, resource: r.resource}
		g := groups[k]
		if g == nil {
			g = &group{app: r.app, resource: r.resource}
			groups[k] = g
		}
		g.perSecond += 1 / s.Every.Seconds()
		g.subs = append(g.subs, s)
	}
	out := map[string]Stretch{}
	var errs []error
	for _, g := range groups {
		d, err := b.Limiter.Demand(ctx, g.app, g.resource, g.perSecond)
		if err != nil {
			errs = append(errs, fmt.Errorf("plan %s/%s: %w", g.app, g.resource, err))
		}
		f := d.Factor(b.Limiter.MaxStretch())
		slices.SortFunc(g.subs, func(a, b *Subscription) int { return strings.Compare(a.ID, b.ID) })
		for i, s := range g.subs {
			sf := f
			if d.Spent {
				sf = max(sf, float64(d.UntilReset)/float64(s.Every))
			}
			if sf > 1 {
				out[s.ID] = Stretch{Factor: sf, Reason: d.Reason, Phase: (float64(i) + 0.5) / float64(len(g.subs))}
			}
		}
	}
	return out, errors.Join(errs...)
}
