package engine_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

const keysRecipe = `name: keys
trigger: {op: ghl.contacts.search, connection: acme, every: 1m, backfill: 2}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: [x]}
`

// TestEveryKeyIsInTheTable runs the engine end to end on the simulator (a
// first poll that fires two items, their chains, a revoked token that
// pauses the connection) and checks that every key it wrote under its
// prefix is one of engine/internal/rdb's table: no stray keys.
func TestEveryKeyIsInTheTable(t *testing.T) {
	overlapInShort(t)
	client, prefix := testRedis(t)
	cat := testCatalog(t)
	loc := "locKEYSTEST000000000"
	srv, ts, tok, conns := simConn(t, cat, loc, sim.Config{Burst: 100000, Daily: -1})
	for i := range 3 {
		srv.CreateContact(loc, map[string]any{"email": fmt.Sprintf("k%d@example.com", i)})
	}
	lim := ratelimit.New(ratelimit.Config{Redis: client, Prefix: prefix, Catalog: cat})
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ts.URL, Limiter: lim, Attempts: 1})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.yaml"), []byte(keysRecipe), 0o600); err != nil {
		t.Fatal(err)
	}
	var completed atomic.Int64
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: tr, Redis: client, Recipes: []string{dir}, Prefix: prefix,
		Every: time.Second, TickEvery: 100 * time.Millisecond, ShutdownTimeout: time.Second,
		OnChain: func(r engine.ChainResult) {
			if r.Status == engine.ChainCompleted {
				completed.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = eng.Run(ctx)
	}()
	waitFor(t, "two chains", func() bool { return completed.Load() >= 2 })
	srv.RevokeToken(tok.AccessToken)
	waitFor(t, "the connection's pause", func() bool { _, p := eng.Pauses().PausedReason("acme"); return p })
	cancel()
	<-done

	keys := rdb.NewKeys(prefix)
	seen := map[string]int{}
	written := redistest.Keys(t, client, prefix)
	sort.Strings(written)
	for _, k := range written {
		if !keys.Match(k) {
			t.Errorf("key %s is not in engine/internal/rdb's table", k)
		}
		for _, p := range keys.KeyPatterns() {
			if ok, _ := path.Match(p, k); ok {
				seen[p]++
			}
		}
	}
	// The run must have written what a poll, a chain and a pause write, or
	// the check above proves nothing.
	sub := engine.SubscriptionID("keys", "acme")
	for _, want := range []string{keys.DedupSeen(sub), keys.DedupMeta(sub), keys.HistoryPolls(sub), keys.HistoryChains(sub),
		keys.SchedulerDue(), keys.ConnStates(), keys.RateBudget("ghl", loc)} {
		if n, _ := client.Exists(context.Background(), want).Result(); n != 1 {
			t.Errorf("the run did not write %s (wrote %v)", want, written)
		}
	}
	if seen[prefix+"{sub:*}:ckpt:*"] < 2 {
		t.Errorf("%d chain checkpoints, want 2 (wrote %v)", seen[prefix+"{sub:*}:ckpt:*"], written)
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
