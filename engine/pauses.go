package engine

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// pauseRefresh is how stale a process's view of the shared pauses may get.
const pauseRefresh = 2 * time.Second

// sharedPauses keeps the paused connections in one Redis hash (connection →
// reason), so a pause met by one worker stops the polls and chains of that
// connection in every process.
type sharedPauses struct {
	rdb redis.UniversalClient
	key string
}

// PausesKey is the Redis hash of paused connections under prefix; `ghlflow
// connect resume` deletes a connection's field to put it back in force.
func PausesKey(prefix string) string { return prefix + "paused" }

// ResumeConnection lifts the pause of a connection in every process that
// shares the Redis under prefix (within pauseRefresh).
func ResumeConnection(ctx context.Context, rdb redis.UniversalClient, prefix, connection string) error {
	return rdb.HDel(ctx, PausesKey(prefix), connection).Err()
}

// syncPauses refreshes the registry's view of the shared pauses when it is
// older than pauseRefresh. One caller fetches; the others use the view they
// have. A Redis failure keeps the last view.
func (r *Registry) syncPauses() {
	if r.shared == nil {
		return
	}
	r.mu.Lock()
	if time.Since(r.fetched) < pauseRefresh {
		r.mu.Unlock()
		return
	}
	r.fetched = time.Now()
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := r.shared.rdb.HGetAll(ctx, r.shared.key).Result()
	if err != nil {
		return
	}
	r.mu.Lock()
	r.paused = m
	r.mu.Unlock()
}
