package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// LimiterBudget is the Budget of the shared rate limiter: it resolves a
// connection to the resource its calls count against (a GHL location or
// company, a referral-app account) and asks the limiter how far that
// resource's polls must be stretched for its daily budget to last the day.
type LimiterBudget struct {
	Limiter     *ratelimit.Limiter
	Connections transport.Resolver
}

// Stretch implements Budget.
func (b LimiterBudget) Stretch(ctx context.Context, connection string, every time.Duration) (time.Duration, string, error) {
	res, err := b.Connections.Resolve(ctx, connection)
	if err != nil {
		return every, "", fmt.Errorf("budget of %s: %w", connection, err)
	}
	return b.Limiter.Stretch(ctx, res.Conn.App, transport.Resource(&res.Conn, nil), every)
}
