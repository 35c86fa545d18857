package engine

import (
	"context"
	"fmt"
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
	b.mu.Lock()
	r, ok := b.known[connection]
	b.mu.Unlock()
	if !ok || time.Since(r.at) > resourceTTL {
		res, err := b.Connections.Resolve(ctx, connection)
		if err != nil {
			return every, "", fmt.Errorf("budget of %s: %w", connection, err)
		}
		r = resolvedResource{app: res.Conn.App, resource: transport.Resource(&res.Conn, nil), at: time.Now()}
		b.mu.Lock()
		if b.known == nil {
			b.known = map[string]resolvedResource{}
		}
		b.known[connection] = r
		b.mu.Unlock()
	}
	return b.Limiter.Stretch(ctx, r.app, r.resource, every)
}
