package engine_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// TestDailyBudgetStretchesPolls: with 20 of a 100-request day left at noon
// (a fifth of the budget for half of the day), the limiter stretches the
// polls 2.5×, so only every third slot polls and the others are recorded
// as skipped with the reason; the skipped slots send nothing.
func TestDailyBudgetStretchesPolls(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	loc := "locBUDGET00000000000"
	srv, ts, _, conns := simConn(t, cat, loc, sim.Config{Burst: 100000, Daily: 100})
	noon := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	lim := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Catalog: cat, Now: func() time.Time { return noon }})
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, Limiter: lim, BaseURL: ts.URL, Attempts: 1})
	search := cat.Op("ghl.contacts.search")
	for i := 0; i < 80; i++ {
		if _, err := tr.Call(ctx, "acme", search, map[string]any{"pageLimit": 1}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	rs, err := catalog.LoadRecipes(cat, "testdata/pollrecipes/new-contacts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := engine.NewSubscription(cat, rs[0])
	if err != nil {
		t.Fatal(err)
	}
	recs := &records{}
	p := &engine.Poller{Subs: subMap{sub.ID: sub}, Caller: tr, Dedup: dedup.New(rdb, dedup.Options{Prefix: prefix}),
		Recorder: recs, Budget: engine.LimiterBudget{Limiter: lim, Connections: conns}}
	before := srv.RequestCount("ghl.contacts.search", loc)
	var polled []int64
	for slot := int64(0); slot < 7; slot++ {
		rec, err := p.Poll(ctx, sub.ID, slot)
		if err != nil {
			t.Fatalf("slot %d: %v", slot, err)
		}
		if rec.Skipped == "" {
			polled = append(polled, slot)
		} else if !strings.Contains(rec.Skipped, "daily budget low") {
			t.Fatalf("slot %d skipped for %q", slot, rec.Skipped)
		}
	}
	if fmt.Sprint(polled) != "[0 3 6]" {
		t.Fatalf("polled slots %v, want [0 3 6]", polled)
	}
	if sent := srv.RequestCount("ghl.contacts.search", loc) - before; sent != 3 {
		t.Fatalf("the polls sent %d requests, want 3", sent)
	}
	if len(recs.got) != 7 {
		t.Fatalf("%d poll records, want 7", len(recs.got))
	}
	t.Logf("skipped slot reason: %s", recs.got[1].Skipped)
}

// TestPausesAreShared: a pause met by one engine stops the subscription in
// another engine on the same Redis; its polls are recorded as skipped with
// the reason; `connect resume` (ResumeConnection) and a reload lift it.
func TestPausesAreShared(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/p.yaml", []byte(fmt.Sprintf(reloadRecipe, "p", "1m")), 0o600); err != nil {
		t.Fatal(err)
	}
	conns, _ := auth.NewStatic()
	newEngine := func() *engine.Engine {
		eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat, Connections: conns}),
			Redis: rdb, Recipes: []string{dir}, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	a, b := newEngine(), newEngine()
	id := engine.SubscriptionID("p", "acme")
	inForce := func(e *engine.Engine, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, ok := e.Registry().Get(id); ok == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("subscription in force = %v, want %v", !want, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	inForce(b, true)
	if err := a.Registry().PauseConnection(ctx, "acme", "unauthorized: token revoked"); err != nil {
		t.Fatal(err)
	}
	inForce(b, false)
	rec, err := b.Poller.Poll(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Skipped != "connection acme is paused: unauthorized: token revoked" {
		t.Fatalf("poll of a paused subscription: %+v", rec)
	}
	polls, err := b.History.Polls(ctx, id, 1)
	if err != nil || len(polls) != 1 || polls[0].Skipped != rec.Skipped {
		t.Fatalf("history %+v %v", polls, err)
	}
	if err := engine.ResumeConnection(ctx, rdb, prefix, "acme"); err != nil {
		t.Fatal(err)
	}
	inForce(a, true)
	inForce(b, true)
	_ = a.Registry().PauseConnection(ctx, "acme", "403")
	inForce(b, false)
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	inForce(a, true)
}
