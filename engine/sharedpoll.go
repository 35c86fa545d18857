package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/triggers"
)

// SharedPages lets the polls of one connection that send the same request
// (operation and input, so the same parameters and page) in the same slot
// share one API call: the first poll keeps the page in Redis for the slot,
// the others read it there, and polls of one process asking at the same
// moment wait for one call. Each subscription still decides what is new
// against its own dedup state and fans out its own chains, so sharing
// changes how often the API is asked, never what fires. The engine places
// the subscriptions that send the same request at the same moment of their
// interval (scheduler.Entry.Align), so the page they share is fresh; one
// placed otherwise reads a page at most one interval old, and what it
// misses the next slot reads.
type SharedPages struct {
	redis redis.UniversalClient
	keys  rdb.Keys

	mu      sync.Mutex
	flights map[string]*pageFlight
}

// NewSharedPages returns the shared pages kept in c under prefix.
func NewSharedPages(c redis.UniversalClient, prefix string) *SharedPages {
	return &SharedPages{redis: c, keys: rdb.NewKeys(prefix)}
}

// pageFlight is one call in progress in this process.
type pageFlight struct {
	done chan struct{}
	body []byte
	err  error
}

// caller returns a triggers.Caller for one poll of slot: it answers from
// the slot's shared pages and counts the pages it did not fetch itself in
// shared.
func (s *SharedPages) caller(next triggers.Caller, slot int64, every time.Duration, shared *atomic.Int64) triggers.Caller {
	return &sharedCaller{pages: s, next: next, slot: slot, ttl: max(every, time.Second), shared: shared}
}

type sharedCaller struct {
	pages  *SharedPages
	next   triggers.Caller
	slot   int64
	ttl    time.Duration
	shared *atomic.Int64
}

// Call answers from the slot's shared page of the same request when there
// is one; otherwise it calls the API once for every poll of this process
// asking at the same moment, and shares the answer. Failures are not
// shared.
func (c *sharedCaller) Call(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, error) {
	b, err := json.Marshal(input)
	if err != nil {
		return c.next.Call(ctx, connection, op, input)
	}
	h := sha256.Sum256(append([]byte(op.ID+"\x00"), b...))
	key := c.pages.keys.SharedPage(connection, hex.EncodeToString(h[:12]), c.slot)
	body, fetched, err := c.pages.do(ctx, key, func() ([]byte, error) {
		return c.fetch(ctx, key, func() ([]byte, error) { return c.next.Call(ctx, connection, op, input) })
	})
	if !fetched && err == nil {
		c.shared.Add(1)
	}
	return body, err
}

// fillWait bounds how long a poll waits for the page another process is
// fetching before it calls the API itself.
const fillWait = 2 * time.Second

// fetch returns the slot's page from Redis (errShared), or calls the API
// and keeps the answer. A short lock makes the polls of other processes
// missing the page at the same moment wait for it instead of calling too.
func (c *sharedCaller) fetch(ctx context.Context, key string, call func() ([]byte, error)) ([]byte, error) {
	r := c.pages.redis
	body, err := r.Get(ctx, key).Bytes()
	if err == nil {
		return body, errShared
	}
	lock := key + ":filling"
	won, err := r.SetNX(ctx, lock, 1, fillWait).Result()
	if err == nil && !won {
		for deadline := time.Now().Add(fillWait); time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(15 * time.Millisecond):
			}
			if body, err := r.Get(ctx, key).Bytes(); err == nil {
				return body, errShared
			}
			if n, err := r.Exists(ctx, lock).Result(); err == nil && n == 0 {
				break // the fetch failed; call the API below
			}
		}
	}
	body, err = call()
	if err != nil {
		if won {
			r.Del(context.WithoutCancel(ctx), lock)
		}
		return nil, err
	}
	p := r.Pipeline()
	p.Set(ctx, key, body, c.ttl)
	p.Del(ctx, lock)
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("shared page %s: %w", key, err)
	}
	return body, nil
}

// errShared marks a page read from Redis rather than fetched.
var errShared = errors.New("shared page")

// do runs fn once for the callers of key in flight together; fetched is
// true for the caller whose fn fetched the page from the API.
func (s *SharedPages) do(ctx context.Context, key string, fn func() ([]byte, error)) (body []byte, fetched bool, err error) {
	s.mu.Lock()
	if s.flights == nil {
		s.flights = map[string]*pageFlight{}
	}
	if f, ok := s.flights[key]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if f.err == nil || errors.Is(f.err, errShared) {
			return f.body, false, nil
		}
		// The call failed for the poll that made it; this one tries its own.
		body, err := fn()
		if errors.Is(err, errShared) {
			return body, false, nil
		}
		return body, err == nil, err
	}
	f := &pageFlight{done: make(chan struct{})}
	s.flights[key] = f
	s.mu.Unlock()
	f.body, f.err = fn()
	s.mu.Lock()
	delete(s.flights, key)
	s.mu.Unlock()
	close(f.done)
	if errors.Is(f.err, errShared) {
		return f.body, false, nil
	}
	return f.body, f.err == nil, f.err
}
