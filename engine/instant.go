package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/webhook"
	"github.com/ghlflow/ghlflow/triggers"
)

// FreshWindow is how recent an event's item must be to fire a subscription
// that has not been polled yet: without the first poll's floor, an update
// of an object older than the recipe is no new item.
const FreshWindow = 5 * time.Minute

// Locations says which location a connection stands for.
type Locations interface {
	LocationOf(ctx context.Context, connection string) (string, error)
}

// ConnectionLocations finds a connection's location in the static
// connections, then in the store (either may be nil).
type ConnectionLocations struct {
	Static *auth.Static
	Store  *auth.Store
}

// LocationOf implements Locations.
func (c ConnectionLocations) LocationOf(ctx context.Context, connection string) (string, error) {
	if c.Static != nil {
		if r, err := c.Static.Resolve(ctx, connection); err == nil {
			return r.Conn.LocationID, nil
		}
	}
	if c.Store == nil {
		return "", fmt.Errorf("%w: %q", auth.ErrNotFound, connection)
	}
	conn, err := c.Store.Get(ctx, connection)
	if err != nil {
		return "", err
	}
	return conn.LocationID, nil
}

// Router takes the webhook events stored by engine/webhook and fires the
// instant subscriptions they concern: the event's locationId finds the
// subscriptions whose trigger connection stands for that location, the
// event's type those whose operation lists it. Each item goes through the
// poll's dedup and gets the chain task id a poll would give it, so an item
// that arrives both ways fires once. An event is acknowledged only after
// its chains are enqueued; one a crash left pending is claimed again.
type Router struct {
	Events    *webhook.Store
	Subs      *Registry
	Poller    *Poller
	Locations Locations
	// Lifecycle, when set, applies the app's install and uninstall events.
	Lifecycle *Lifecycle
	// Metrics and Logger are optional.
	Metrics *webhook.Metrics
	Logger  *slog.Logger
	// Consumer names this process in the consumer group (default
	// host:pid).
	Consumer string
	// Batch is how many events one read takes (default 100); ClaimIdle is
	// how long an event stays with a consumer that does not acknowledge it
	// before another claims it (default 30 s).
	Batch     int
	ClaimIdle time.Duration
	// LocationTTL is how long a connection's location is cached (default
	// 1 min).
	LocationTTL time.Duration

	mu   sync.Mutex
	locs map[string]cachedLocation
}

type cachedLocation struct {
	loc string
	at  time.Time
}

// Run routes events until ctx ends.
func (r *Router) Run(ctx context.Context) error {
	if err := r.Events.Group(ctx); err != nil {
		return err
	}
	consumer := r.Consumer
	if consumer == "" {
		host, _ := os.Hostname()
		consumer = host + ":" + strconv.Itoa(os.Getpid())
	}
	batch, idle := r.Batch, r.ClaimIdle
	if batch <= 0 {
		batch = 100
	}
	if idle <= 0 {
		idle = 30 * time.Second
	}
	for ctx.Err() == nil {
		evs, err := r.Events.Read(ctx, consumer, batch, idle, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				r.logger().Warn("read webhook events", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		done := make([]string, 0, len(evs))
		for _, ev := range evs {
			if err := r.Route(ctx, ev); err != nil {
				// Left pending: claimed again after ClaimIdle.
				r.logger().Warn("route webhook event", "type", ev.Type, "location", ev.Location, "webhook", ev.WebhookID, "err", err)
				continue
			}
			done = append(done, ev.Entry)
		}
		if err := r.Events.Done(context.WithoutCancel(ctx), done...); err != nil {
			r.logger().Warn("acknowledge webhook events", "err", err)
		}
	}
	return nil
}

// Route fires the subscriptions one event concerns. An error means the
// event should be tried again.
func (r *Router) Route(ctx context.Context, ev webhook.Event) error {
	if r.Lifecycle != nil {
		handled, err := r.Lifecycle.Apply(ctx, ev)
		if err != nil {
			return err
		}
		if handled {
			r.Metrics.Count(ev.Type, webhook.ResultRouted)
			return nil
		}
	}
	subs, err := r.targets(ctx, ev)
	if err != nil {
		return err
	}
	taken := false
	for _, sub := range subs {
		it, err := triggers.EventItem(sub.Op, sub.Dedup, ev.Body)
		if err != nil {
			// The poll fires what an event cannot key as it would.
			r.logger().Debug("webhook event without an item to fire", "type", ev.Type, "recipe", sub.Recipe.Name, "err", err)
			continue
		}
		params, err := sub.Params()
		if err != nil || !triggers.EventMatches(sub.Op, params, it) {
			continue
		}
		taken = true
		if _, err := r.Poller.Fire(ctx, sub, it, ev.Received); err != nil {
			return fmt.Errorf("webhook %s for %s: %w", ev.WebhookID, sub.Recipe.Name, err)
		}
	}
	if taken {
		r.Metrics.Count(ev.Type, webhook.ResultRouted)
	} else {
		r.Metrics.Count(ev.Type, webhook.ResultUnrouted)
	}
	return nil
}

// targets are the instant subscriptions whose operation listens to the
// event's type and whose connection stands for its location.
func (r *Router) targets(ctx context.Context, ev webhook.Event) ([]*Subscription, error) {
	if ev.Location == "" || ev.Type == "" {
		return nil, nil
	}
	var out []*Subscription
	for _, sub := range r.Subs.All() {
		if !sub.Recipe.Trigger.Instant || !sub.Op.ListensTo(ev.Type) || !sub.Tenant.Active() {
			continue
		}
		loc, err := r.locationOf(ctx, sub.Connection)
		if err != nil {
			return nil, err
		}
		if loc == ev.Location {
			out = append(out, sub)
		}
	}
	return out, nil
}

// locationOf is the cached location of a connection ("" for one that is
// gone).
func (r *Router) locationOf(ctx context.Context, connection string) (string, error) {
	ttl := r.LocationTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	r.mu.Lock()
	c, ok := r.locs[connection]
	r.mu.Unlock()
	if ok && time.Since(c.at) < ttl {
		return c.loc, nil
	}
	loc, err := r.Locations.LocationOf(ctx, connection)
	if errors.Is(err, auth.ErrNotFound) {
		loc, err = "", nil
	}
	if err != nil {
		return "", fmt.Errorf("location of %s: %w", connection, err)
	}
	r.mu.Lock()
	if r.locs == nil {
		r.locs = map[string]cachedLocation{}
	}
	r.locs[connection] = cachedLocation{loc: loc, at: time.Now()}
	r.mu.Unlock()
	return loc, nil
}

func (r *Router) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Fire fans out an item that arrived by webhook the way a poll fans out
// the items it finds new: through the subscription's dedup state and under
// the item's one chain task id. An unknown item gets its chain; then the
// item is noted as seen, so the poll that reads it later finds it known
// (and a chain enqueued twice meets its task id). Before the first poll
// has seeded the subscription only fresh items fire (see FreshWindow).
func (p *Poller) Fire(ctx context.Context, sub *Subscription, it triggers.Item, received time.Time) (fired bool, err error) {
	items := dedupItems([]triggers.Item{it})
	d, err := p.Dedup.Decide(ctx, sub.ID, items, 0)
	if err != nil {
		return false, err
	}
	fresh := !it.Time.IsZero() && it.Time.After(received.Add(-FreshWindow))
	// An event received before the first poll seeded the subscription fires
	// as it would have had it been routed then (fresh items fire before the
	// seed), though the seed has since counted its item as seen: routed
	// late (its process died and it was claimed again), it is not lost. A
	// chain it already ran meets its task id.
	late := d.Known[0] && fresh && !d.SeededAt.IsZero() && received.Before(d.SeededAt)
	if (!d.Known[0] && (d.Seeded || fresh)) || late {
		t := it.Time
		if t.IsZero() {
			t = received
		}
		var delay time.Duration
		if d := p.paces(ctx, sub, 1); d != nil {
			delay = d[0] // the tenant's chains are paced as a poll's are
		}
		dup, err := p.enqueue(ctx, ChainPayload{Sub: sub.ID, Recipe: sub.Recipe.Name, ItemKey: it.Key, Item: it.Raw,
			Time: t, Enqueued: time.Now(), Received: received}, delay)
		if err != nil {
			return false, err
		}
		fired = !dup
	}
	return fired, p.Dedup.Note(ctx, sub.ID, items)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
