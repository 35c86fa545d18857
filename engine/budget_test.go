package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
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
	cat := testCatalog(t)
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
		Recorder: recs, Budget: &engine.LimiterBudget{Limiter: lim, Connections: conns}}
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
