package transport_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func newRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	return redistest.New(t)
}

// redisStack is the production shape: connections in the sealed store, the
// limiter shared through Redis.
func redisStack(t testing.TB, e *env, rdb *redis.Client, prefix string, budgets map[string]catalog.RateLimit) (*transport.Transport, *auth.Store, *ratelimit.Limiter) {
	t.Helper()
	keys, err := auth.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: keys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	lim := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Catalog: e.cat, Budgets: budgets, Logger: quiet})
	tr := transport.New(transport.Config{Catalog: e.cat, Connections: store, Limiter: lim, BaseURL: e.http.URL, Logger: quiet})
	return tr, store, lim
}

// A 429 pauses the resource for every caller sharing the Redis, as long as
// its Retry-After says; the call then succeeds.
func TestRateLimitedCallPausesResource(t *testing.T) {
	e := newEnv(t, sim.Config{Interval: time.Second})
	rdb, prefix := newRedis(t)
	tr, store, lim := redisStack(t, e, rdb, prefix, nil)
	ctx := context.Background()
	tok := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-acme", Private: true})
	if err := store.Put(ctx, auth.Connection{ID: "acme", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc-acme"},
		auth.Credential{AccessToken: tok.AccessToken}); err != nil {
		t.Fatal(err)
	}
	op := e.cat.MustOp("ghl.contacts.list")
	if _, err := tr.Call(ctx, "acme", op, nil); err != nil {
		t.Fatal(err)
	}
	st, err := lim.Status(ctx, "ghl", "loc-acme")
	if err != nil || st.Max != 100 || st.Interval != time.Second || st.DailyRemaining <= 0 {
		t.Fatalf("budget learned from the headers: %+v %v", st, err)
	}
	e.srv.SetFaults(sim.Faults{Burst429: 1})
	if _, err := tr.Call(ctx, "acme", op, nil); err != nil {
		t.Fatalf("after one 429: %v", err)
	}
	if n := e.srv.TooManyRequests(); n != 1 {
		t.Fatalf("429s: %d", n)
	}
}

// BenchmarkCall measures one call through the transport: static
// connections without a limiter, and the Redis store with the shared
// limiter (two Redis round trips more, and an unseal).
func BenchmarkCall(b *testing.B) {
	e := newEnv(b, sim.Config{Burst: -1, Daily: -1})
	c := e.srv.CreateContact("loc-acme", map[string]any{"firstName": "Ada"})
	in := map[string]any{"contactId": c["id"]}
	op := e.cat.MustOp("ghl.contacts.get")
	ctx := context.Background()
	b.Run("static", func(b *testing.B) {
		tr := transport.New(transport.Config{Catalog: e.cat, Connections: e.conns, BaseURL: e.http.URL,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.Call(ctx, "acme", op, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis-store-and-limiter", func(b *testing.B) {
		rdb, prefix := newRedis(b)
		// A budget the benchmark cannot reach: this measures the cost of
		// the limiter, not its pacing.
		tr, store, _ := redisStack(b, e, rdb, prefix, map[string]catalog.RateLimit{
			"ghl": {Burst: 1_000_000, Interval: catalog.Duration(time.Second)}})
		r, _ := e.conns.Resolve(ctx, "acme")
		if err := store.Put(ctx, r.Conn, r.Cred); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.Call(ctx, "acme", op, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
