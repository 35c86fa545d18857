// Package connstate is the one owner of a connection's state: ok, paused
// (why, since when) or needing a new authorization. The engine (a call
// refused for authorization pauses the connection's subscriptions), the
// connection store (a refused refresh, `connect pause`) and `ghlflow
// connect` (list, resume) read and write the same record, one field per
// connection in one Redis hash (rdb.Keys.ConnStates); a connection without
// a record is ok.
//
// Who lifts a record: storing a new credential for the connection, `ghlflow
// connect resume`, and, for connections outside the store (static ones,
// fixed in their file or environment), a reload of the engine.
package connstate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// Statuses of a connection.
const (
	OK          = "ok"           // calls may go out
	NeedsReauth = "needs_reauth" // the credential was refused; a user must connect again
	Paused      = "paused"       // paused on purpose; the reason says why
)

// State is a connection's state.
type State struct {
	// Status is OK, NeedsReauth or Paused.
	Status string `json:"status"`
	// Reason says why when the status is not OK.
	Reason string `json:"reason,omitempty"`
	// Since is when the status was set (zero for OK).
	Since time.Time `json:"since"`
}

// InForce reports whether calls of the connection may go out.
func (s State) InForce() bool { return s.Status == "" || s.Status == OK }

// States reads and writes connection states in Redis. It is safe for
// concurrent use.
type States struct {
	rdb  redis.UniversalClient
	keys rdb.Keys
	now  func() time.Time
}

// New returns the states kept in c under prefix ("" = the default prefix).
func New(c redis.UniversalClient, prefix string) *States {
	return &States{rdb: c, keys: rdb.NewKeys(prefix), now: time.Now}
}

// Valid reports whether status is one a connection may have.
func Valid(status string) bool { return status == OK || status == NeedsReauth || status == Paused }

func decode(id, raw string) (State, error) {
	var st State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return State{Status: OK}, fmt.Errorf("connection %s state: %w", id, err)
	}
	return st, nil
}

// Get returns the state of connection id.
func (s *States) Get(ctx context.Context, id string) (State, error) {
	raw, err := s.rdb.HGet(ctx, s.keys.ConnStates(), id).Result()
	if rdb.IsNil(err) {
		return State{Status: OK}, nil
	}
	if err != nil {
		return State{Status: OK}, fmt.Errorf("connection %s state: %w", id, err)
	}
	return decode(id, raw)
}

// GetIn queues the read of id's state on pipe (so that it shares a round
// trip with other reads); the function returned gives the state once pipe
// has run.
func (s *States) GetIn(ctx context.Context, pipe redis.Pipeliner, id string) func() (State, error) {
	cmd := pipe.HGet(ctx, s.keys.ConnStates(), id)
	return func() (State, error) {
		raw, err := cmd.Result()
		if rdb.IsNil(err) {
			return State{Status: OK}, nil
		}
		if err != nil {
			return State{Status: OK}, fmt.Errorf("connection %s state: %w", id, err)
		}
		return decode(id, raw)
	}
}

// All returns the state of every connection that is not ok.
func (s *States) All(ctx context.Context) (map[string]State, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.ConnStates()).Result()
	if err != nil {
		return nil, fmt.Errorf("connection states: %w", err)
	}
	out := make(map[string]State, len(m))
	for id, raw := range m {
		st, err := decode(id, raw)
		if err != nil {
			continue
		}
		out[id] = st
	}
	return out, nil
}

// Set sets connection id's state; OK lifts it.
func (s *States) Set(ctx context.Context, id, status, reason string) error {
	if !Valid(status) {
		return fmt.Errorf("connection %s: unknown status %q", id, status)
	}
	if status == OK {
		return s.Lift(ctx, id)
	}
	b, _ := json.Marshal(State{Status: status, Reason: reason, Since: s.now().UTC()})
	if err := s.rdb.HSet(ctx, s.keys.ConnStates(), id, b).Err(); err != nil {
		return fmt.Errorf("connection %s: set %s: %w", id, status, err)
	}
	return nil
}

// SetFirst sets connection id's state unless it already has one (the
// first cause of a stop is the one worth showing). It reports whether it
// set it.
func (s *States) SetFirst(ctx context.Context, id, status, reason string) (bool, error) {
	if !Valid(status) || status == OK {
		return false, fmt.Errorf("connection %s: status %q cannot stop it", id, status)
	}
	b, _ := json.Marshal(State{Status: status, Reason: reason, Since: s.now().UTC()})
	set, err := s.rdb.HSetNX(ctx, s.keys.ConnStates(), id, b).Result()
	if err != nil {
		return false, fmt.Errorf("connection %s: set %s: %w", id, status, err)
	}
	return set, nil
}

// Lift puts connection id back in force.
func (s *States) Lift(ctx context.Context, id string) error {
	if err := s.rdb.HDel(ctx, s.keys.ConnStates(), id).Err(); err != nil {
		return fmt.Errorf("connection %s: lift: %w", id, err)
	}
	return nil
}

// LiftUnstored puts back in force every connection the store does not
// hold (static connections: a reload is how their fix is taken in) and
// returns how many it lifted. Stored connections keep their state until a
// new credential or `ghlflow connect resume`.
func (s *States) LiftUnstored(ctx context.Context) (int, error) {
	n, err := rdb.ConnStatesLiftUnstored.Run(ctx, s.rdb, []string{s.keys.ConnStates(), s.keys.Conns()}).Int()
	if err != nil {
		return 0, fmt.Errorf("lift connection states: %w", err)
	}
	return n, nil
}

// SetClock replaces the clock that stamps Since (default time.Now).
func (s *States) SetClock(now func() time.Time) { s.now = now }
