package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/triggers"
)

// ChainBusy is the status of a chain put back because its tenant has as
// many chains running as it may (Chainer.TenantCap).
const ChainBusy = "busy"

// BusyRetry is how soon a chain put back for its tenant's cap runs again.
const BusyRetry = time.Second

// BusyError is the result of a chain whose tenant is at its cap of chains
// in flight: asynq runs it again after BusyRetry without counting a
// failure (see IsFailure and RetryDelay), and the worker takes another
// tenant's chain meanwhile.
type BusyError struct {
	Tenant string
	Cap    int
}

// WaitFor is how soon the chain runs again (policy.Waiter).
func (e *BusyError) WaitFor() time.Duration { return BusyRetry }

func (e *BusyError) Error() string {
	return "tenant " + e.Tenant + " has its chains in flight at the cap; waiting for a slot"
}

// tenantGate counts the chains in flight per tenant in one process.
type tenantGate struct {
	mu       sync.Mutex
	inflight map[string]int
}

// enter takes a slot of tenant under limit; false when none is free.
func (g *tenantGate) enter(tenant string, limit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight == nil {
		g.inflight = map[string]int{}
	}
	if g.inflight[tenant] >= limit {
		return false
	}
	g.inflight[tenant]++
	return true
}

// leave gives a slot back.
func (g *tenantGate) leave(tenant string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[tenant]--; g.inflight[tenant] <= 0 {
		delete(g.inflight, tenant)
	}
}

// admitTenant takes a slot of the subscription's tenant when the Chainer caps
// tenants; the built-in tenant of recipes naming connections is not
// capped. release gives the slot back (a no-op when none was taken).
func (c *Chainer) admitTenant(sub *Subscription) (release func(), err error) {
	if c.TenantCap <= 0 || sub.Tenant.IsDefault() {
		return func() {}, nil
	}
	id := sub.Tenant.ID
	if !c.gate.enter(id, c.TenantCap) {
		return nil, &BusyError{Tenant: id, Cap: c.TenantCap}
	}
	return func() { c.gate.leave(id) }, nil
}

// Pacer reserves the start times of a tenant's chains across polls and
// processes; RedisPacer implements it.
type Pacer interface {
	// Reserve reserves n slots one every apart, with banked slots free
	// for an idle tenant, and returns the time of the first.
	Reserve(ctx context.Context, tenant string, n, banked int, every time.Duration) (time.Time, error)
}

// RedisPacer keeps each tenant's next slot in Redis.
type RedisPacer struct {
	Redis redis.UniversalClient
	Keys  rdb.Keys
}

// Reserve implements Pacer.
func (r RedisPacer) Reserve(ctx context.Context, tenant string, n, banked int, every time.Duration) (time.Time, error) {
	now := time.Now()
	ms, err := rdb.TenantPace.Run(ctx, r.Redis, []string{r.Keys.TenantPace(tenant)}, now.UnixMilli(), n, every.Milliseconds(), banked).Int64()
	if err != nil {
		return now, fmt.Errorf("pace tenant %s: %w", tenant, err)
	}
	return time.UnixMilli(ms), nil
}

// paces returns the delays of a poll's n chains of sub: a tenant's chains
// start one every Pace interval across all its polls, after a burst an
// idle tenant has banked. nil: no delay.
func (p *Poller) paces(ctx context.Context, sub *Subscription, n int) []time.Duration {
	if p.Pace == nil || p.Pacer == nil || sub.Tenant.IsDefault() || n == 0 {
		return nil
	}
	banked, every := p.Pace(sub)
	if every <= 0 {
		return nil
	}
	start, err := p.Pacer.Reserve(ctx, sub.Tenant.ID, n, banked, every)
	if err != nil {
		p.logger().Warn("chains not paced", "sub", sub.ID, "err", err)
		return nil
	}
	out := make([]time.Duration, n)
	now := time.Now()
	for i := range out {
		out[i] = max(0, start.Add(time.Duration(i)*every).Sub(now))
	}
	return out
}

// TenantPace paces a tenant's chains by the API budget of its recipe's
// first step: an idle tenant's burst's worth of chains runs at once, the
// rest start one every interval × steps ÷ burst, about as fast as the
// tenant's budget lets them run. They stay off the queue until their time,
// so other tenants' chains do not wait behind them.
func TenantPace(cat *catalog.Catalog) func(sub *Subscription) (int, time.Duration) {
	return func(sub *Subscription) (int, time.Duration) {
		r := sub.Recipe
		if len(r.Steps) == 0 {
			return 0, 0
		}
		op := cat.Op(r.Steps[0].Op)
		if op == nil {
			return 0, 0
		}
		app := cat.App(op.App)
		if app == nil || app.RateLimit.Burst <= 0 {
			return 0, 0
		}
		iv := app.RateLimit.Interval.Std()
		if iv <= 0 {
			iv = 10 * time.Second
		}
		calls := len(r.Steps)
		return max(1, app.RateLimit.Burst/calls), iv * time.Duration(calls) / time.Duration(app.RateLimit.Burst)
	}
}

// admit takes a poll slot of the subscription's tenant; busy says why the
// poll is skipped when none is free. With shared polls the cap counts the
// tenant's API calls in flight instead (see gated): the polls that read a
// page another poll fetched take no slot, so a tenant's recipes that poll
// together are not skipped for being many.
func (p *Poller) admit(sub *Subscription) (release func(), busy string) {
	if p.TenantCap <= 0 || sub.Tenant.IsDefault() || p.Shared != nil {
		return func() {}, ""
	}
	id := sub.Tenant.ID
	if !p.gate.enter(id, p.TenantCap) {
		return nil, fmt.Sprintf("tenant %s has %d polls in flight", id, p.TenantCap)
	}
	return func() { p.gate.leave(id) }, ""
}

// pollBusy ends a poll whose API call found its tenant's calls in flight
// at the cap: the slot is skipped, as admit skips one.
type pollBusy struct{ reason string }

func (e *pollBusy) Error() string { return e.reason }

// gated returns next with the tenant cap taken around each call of sub's
// poll (next itself when the tenant is not capped).
func (p *Poller) gated(sub *Subscription, next triggers.Caller) triggers.Caller {
	if p.TenantCap <= 0 || sub.Tenant.IsDefault() {
		return next
	}
	return gatedCaller{p: p, tenant: sub.Tenant.ID, next: next}
}

type gatedCaller struct {
	p      *Poller
	tenant string
	next   triggers.Caller
}

func (g gatedCaller) Call(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, error) {
	if !g.p.gate.enter(g.tenant, g.p.TenantCap) {
		return nil, &pollBusy{reason: fmt.Sprintf("tenant %s has %d API calls in flight", g.tenant, g.p.TenantCap)}
	}
	defer g.p.gate.leave(g.tenant)
	return g.next.Call(ctx, connection, op, input)
}
