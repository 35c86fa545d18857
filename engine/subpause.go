package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	rdbkeys "github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// SubPause is why and since when a subscription is paused.
type SubPause struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// subPauseRefresh is how stale a poller's view of the paused
// subscriptions may get: a poll may still run up to this long after its
// subscription was paused.
const subPauseRefresh = time.Second

// SubPauses keeps the subscriptions paused on purpose (through the API):
// their polls are skipped and recorded as skipped until they are resumed;
// their state stays.
type SubPauses struct {
	rdb  redis.UniversalClient
	keys rdbkeys.Keys

	mu      sync.Mutex
	view    map[string]struct{} // paused subscription ids, read at fetched
	fetched time.Time
}

// NewSubPauses returns the subscription pauses under prefix.
func NewSubPauses(c redis.UniversalClient, prefix string) *SubPauses {
	return &SubPauses{rdb: c, keys: rdbkeys.NewKeys(prefix)}
}

// Pause pauses subscription sub.
func (p *SubPauses) Pause(ctx context.Context, sub, reason string) error {
	b, _ := json.Marshal(SubPause{Since: time.Now().UTC(), Reason: reason})
	if err := p.rdb.HSet(ctx, p.keys.SubsPaused(), sub, b).Err(); err != nil {
		return fmt.Errorf("pause subscription %s: %w", sub, err)
	}
	return nil
}

// Resume lifts the pause of subscription sub.
func (p *SubPauses) Resume(ctx context.Context, sub string) error {
	if err := p.rdb.HDel(ctx, p.keys.SubsPaused(), sub).Err(); err != nil {
		return fmt.Errorf("resume subscription %s: %w", sub, err)
	}
	return nil
}

// Get returns the pause of sub, or nil when it is not paused.
func (p *SubPauses) Get(ctx context.Context, sub string) (*SubPause, error) {
	raw, err := p.rdb.HGet(ctx, p.keys.SubsPaused(), sub).Result()
	if rdbkeys.IsNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("subscription pause %s: %w", sub, err)
	}
	var sp SubPause
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		return nil, fmt.Errorf("subscription pause %s: %w", sub, err)
	}
	return &sp, nil
}

// Paused reports whether sub is paused, from a view of every paused
// subscription read at most subPauseRefresh ago (one read a second per
// process instead of one per poll). When Redis cannot be read, the last
// view holds.
// One caller reads; the others use the view they have meanwhile, so no
// poll waits on another's round trip.
func (p *SubPauses) Paused(ctx context.Context, sub string) bool {
	p.mu.Lock()
	stale := time.Since(p.fetched) >= subPauseRefresh
	if stale {
		p.fetched = time.Now()
	}
	p.mu.Unlock()
	if stale {
		if ids, err := p.rdb.HKeys(ctx, p.keys.SubsPaused()).Result(); err == nil {
			view := make(map[string]struct{}, len(ids))
			for _, id := range ids {
				view[id] = struct{}{}
			}
			p.mu.Lock()
			p.view = view
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	_, paused := p.view[sub]
	p.mu.Unlock()
	return paused
}

// All returns every paused subscription's pause by id.
func (p *SubPauses) All(ctx context.Context) (map[string]SubPause, error) {
	m, err := p.rdb.HGetAll(ctx, p.keys.SubsPaused()).Result()
	if err != nil {
		return nil, fmt.Errorf("subscription pauses: %w", err)
	}
	out := make(map[string]SubPause, len(m))
	for id, raw := range m {
		var sp SubPause
		if json.Unmarshal([]byte(raw), &sp) == nil {
			out[id] = sp
		}
	}
	return out, nil
}

// Forget drops the pauses of subs (their subscriptions are gone).
func (p *SubPauses) Forget(ctx context.Context, subs ...string) error {
	if len(subs) == 0 {
		return nil
	}
	return p.rdb.HDel(ctx, p.keys.SubsPaused(), subs...).Err()
}
