package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/connstate"
)

// pauseRefresh is how stale a process's view of the shared pauses may get.
const pauseRefresh = 2 * time.Second

// Pauses is the engine's view of the connections' states (engine/connstate):
// a connection that is not ok stops its subscriptions' polls and makes its
// chains wait, in every process sharing the Redis. Polls and chains that
// meet an authorization failure pause their connection here. It implements
// Pauser and is safe for concurrent use.
type Pauses struct {
	states *connstate.States
	log    *slog.Logger

	mu      sync.RWMutex
	view    map[string]connstate.State // connection -> state, not ok
	fetched time.Time                  // when view was read
}

// NewPauses returns the pauses kept in c under prefix.
func NewPauses(c redis.UniversalClient, prefix string, log *slog.Logger) *Pauses {
	if log == nil {
		log = slog.Default()
	}
	return &Pauses{states: connstate.New(c, prefix), log: log, view: map[string]connstate.State{}}
}

// PauseConnection stops the subscriptions of a connection whose credential
// was refused, with the reason, in every process; an earlier pause keeps
// its reason. A new credential, `ghlflow connect resume` or, for a
// connection outside the store, a reload lifts it; a connection still
// broken pauses again at its next call.
func (p *Pauses) PauseConnection(ctx context.Context, connection, reason string) error {
	p.mu.Lock()
	if _, ok := p.view[connection]; !ok {
		p.view[connection] = connstate.State{Status: connstate.NeedsReauth, Reason: reason, Since: time.Now()}
	}
	p.mu.Unlock()
	set, err := p.states.SetFirst(ctx, connection, connstate.NeedsReauth, reason)
	if err != nil {
		return fmt.Errorf("pause %s: %w", connection, err)
	}
	if set {
		p.log.Warn("connection paused: its subscriptions stop until it is fixed", "connection", connection, "reason", reason)
	}
	return nil
}

// PausedReason reports whether a connection is stopped (paused or needing
// a new authorization), and why.
func (p *Pauses) PausedReason(connection string) (string, bool) {
	p.sync()
	p.mu.RLock()
	defer p.mu.RUnlock()
	st, ok := p.view[connection]
	return st.Reason, ok
}

// Paused returns the stopped connections and their reasons.
func (p *Pauses) Paused() map[string]string {
	p.sync()
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make(map[string]string, len(p.view))
	for k, v := range p.view {
		out[k] = v.Reason
	}
	return out
}

// liftUnstored puts the connections outside the store back in force (a
// reload is how a fixed static connection is taken in).
func (p *Pauses) liftUnstored(ctx context.Context) error {
	if _, err := p.states.LiftUnstored(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	p.fetched = time.Time{}
	p.mu.Unlock()
	return nil
}

// sync refreshes the view when it is older than pauseRefresh. One caller
// fetches; the others use the view they have. A Redis failure keeps the
// last view.
func (p *Pauses) sync() {
	p.mu.Lock()
	if time.Since(p.fetched) < pauseRefresh {
		p.mu.Unlock()
		return
	}
	p.fetched = time.Now()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := p.states.All(ctx)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.view = m
	p.mu.Unlock()
}
