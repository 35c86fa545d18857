package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// burstTenantChains is the engine's default cap (0); -1 shows the latency
// without it.
var burstTenantChains = 0

// TestBurstDoesNotHoldBackOtherTenants: tenant A gets 5,000 new contacts
// at once; its chains are bound by its location's rate limit for minutes.
// Meanwhile contacts of B and C get their chains within seconds, because
// A's chains in flight are capped. The test prints B's and C's item →
// action latency p99.
func TestBurstDoesNotHoldBackOtherTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("a 5,000-item burst")
	}
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newTenantFixture(t, "A", "B", "C")
	for name := range tenantRecipes {
		if name != "welcome.yaml" {
			os.Remove(filepath.Join(f.dir, name))
		}
	}
	cli := tenant.NewStore(rdb, prefix)
	for _, id := range []string{"A", "B", "C"} {
		f.put(t, cli, id, "pro")
	}
	cat := testCatalog(t)
	limiter := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Catalog: cat})
	var mu sync.Mutex
	done := map[string]time.Time{} // item key → chain completed
	eng, err := engine.New(engine.Config{Catalog: cat, Redis: rdb, Recipes: []string{f.dir}, Prefix: prefix,
		Caller:      transport.New(transport.Config{Catalog: cat, Connections: f.conns, BaseURL: f.url, Limiter: limiter}),
		Connections: f.conns, Every: time.Second, TickEvery: 100 * time.Millisecond, ChainConcurrency: 16,
		TenantChains: burstTenantChains,
		OnChain: func(r engine.ChainResult) {
			if r.Status == engine.ChainCompleted {
				mu.Lock()
				done[r.ItemKey] = time.Now()
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	waitSeeded(t, ctx, eng)

	for i := range 5000 {
		f.srv.CreateContact("loc-A", map[string]any{"firstName": "Burst", "email": strings.Repeat("a", i%7) + "@burst.example"})
	}
	ins := asynq.NewInspectorFromRedisClient(rdb)
	queued := func() int {
		qi, err := ins.GetQueueInfo(engine.QueueName(prefix, engine.QueueChain))
		if err != nil {
			return 0
		}
		return qi.Size
	}
	// A's polls walk its burst at its location's rate limit and fan it out.
	until(t, 90*time.Second, "A's burst queued", func() bool { return queued() >= 1000 })
	created := map[string]time.Time{}
	for i := range 20 {
		loc := []string{"loc-B", "loc-C"}[i%2]
		c := f.srv.CreateContact(loc, map[string]any{"firstName": "Other"})
		created[c["id"].(string)] = time.Now()
		time.Sleep(250 * time.Millisecond)
	}
	var lat []time.Duration
	until(t, 60*time.Second, "B's and C's chains", func() bool {
		mu.Lock()
		defer mu.Unlock()
		lat = lat[:0]
		for key, at := range done {
			for id, t0 := range created {
				if strings.Contains(key, id) {
					lat = append(lat, at.Sub(t0))
				}
			}
		}
		return len(lat) == len(created)
	})
	size := queued()
	slices.Sort(lat)
	p99 := lat[(len(lat)*99+99)/100-1]
	mu.Lock()
	aDone := len(done) - len(created)
	mu.Unlock()
	t.Logf("during A's 5,000-item burst (%d of A's chains done, %d chains queued): B and C item → action latency p50 %s, p99 %s, max %s",
		aDone, size, lat[len(lat)/2].Round(time.Millisecond), p99.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if size < 1000 {
		t.Fatalf("only %d chains queued: no burst to measure against", size)
	}
	if aDone >= 5000 {
		t.Fatalf("A's burst finished before the others' items were measured (%d chains)", aDone)
	}
	if p99 > 10*time.Second {
		t.Errorf("other tenants' latency p99 %s during A's burst, want under 10 s", p99)
	}
}
