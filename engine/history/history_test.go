package history_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

func TestBounded(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	s := history.New(rdb, history.Options{Prefix: prefix, Keep: 5})
	for i := range 12 {
		if err := s.AddPoll(ctx, "s1", history.Poll{Slot: int64(i), Read: 100, New: i}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddChain(ctx, "t1", "s1", history.Chain{Recipe: "r", ItemKey: fmt.Sprint(i), Status: "completed",
			Steps: []history.Step{{Op: "op", Status: "done"}}}); err != nil {
			t.Fatal(err)
		}
	}
	polls, err := s.Polls(ctx, "s1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(polls) != 5 || polls[0].Slot != 11 || polls[4].Slot != 7 {
		t.Fatalf("polls = %+v", polls)
	}
	chains, err := s.Chains(ctx, "s1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 2 || chains[0].ItemKey != "11" || chains[0].Steps[0].Status != "done" {
		t.Fatalf("chains = %+v", chains)
	}
}

// TestPollRecordSize: the last DefaultKeep polls of a subscription, as a
// scheduled poll with nothing new records them, stay small in Redis.
func TestPollRecordSize(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	s := history.New(rdb, history.Options{Prefix: prefix})
	sub := "53540b0eaca2c89a"
	at := time.Date(2026, 12, 3, 13, 55, 26, 221360073, time.UTC)
	for i := range history.DefaultKeep {
		p := history.Poll{Sub: sub, Recipe: "tenant-new-contact-note", Time: at.Add(time.Duration(i) * 10 * time.Second),
			Took: 6106795 * time.Nanosecond, Slot: 359261225 + int64(i), Requests: 1}
		if err := s.AddPoll(ctx, sub, p); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.MemoryUsage(ctx, prefix+"{sub:"+sub+"}:hist:polls", 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d polls: %d bytes (MEMORY USAGE)", history.DefaultKeep, n)
	if n > 6000 {
		t.Fatalf("%d polls take %d bytes", history.DefaultKeep, n)
	}
	polls, err := s.Polls(ctx, sub, 1)
	if err != nil || len(polls) != 1 || polls[0].Sub != sub || polls[0].Requests != 1 || polls[0].Slot != 359261225+49 ||
		!polls[0].Time.Equal(at.Add(490*time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("polls = %+v, %v", polls, err)
	}
}

// TestRecentRuns: the index of recent runs keeps the newest of every
// subscription (RecentKeep) and of each tenant (TenantRecentKeep), newest
// first, without their steps and with a long error cut; a run written
// after Redis lost its scripts is recorded too; forgetting a tenant
// deletes its index and its runs in the index of all.
func TestRecentRuns(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	s := history.New(rdb, history.Options{Prefix: prefix, Keep: 5, RecentKeep: 20, TenantRecentKeep: 8})
	base := time.Now().Truncate(time.Millisecond)
	for i := range 30 {
		tenant, sub := fmt.Sprintf("t%d", i%3), fmt.Sprintf("s%d", i%6)
		c := history.Chain{Time: base.Add(time.Duration(i) * time.Second), Recipe: "r", ItemKey: fmt.Sprint(i),
			Status: "completed", Steps: []history.Step{{Op: "op", Status: "done"}}}
		if i == 29 {
			c.Status, c.Error = "failed", strings.Repeat("x", 2000)
		}
		if err := s.AddChain(ctx, tenant, sub, c); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Recent(ctx, "")
	if err != nil || len(all) != 20 || all[0].ItemKey != "29" || all[19].ItemKey != "10" {
		t.Fatalf("all: %d runs, %v", len(all), err)
	}
	if all[0].Sub != "s5" || all[0].Tenant != "t2" || all[0].Status != "failed" || len(all[0].Error) > 600 {
		t.Fatalf("newest: %+v", all[0])
	}
	t1, err := s.Recent(ctx, "t1")
	if err != nil || len(t1) != 8 || t1[0].ItemKey != "28" || t1[7].ItemKey != "7" {
		t.Fatalf("t1: %+v, %v", t1, err)
	}
	// Redis lost its scripts: the run is still recorded, in both places.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.AddChain(ctx, "t1", "s1", history.Chain{Time: base.Add(time.Minute), ItemKey: "late", Status: "completed"}); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.Chains(ctx, "s1", 1); err != nil || len(cs) != 1 || cs[0].ItemKey != "late" {
		t.Fatalf("after a script flush: %+v, %v", cs, err)
	}
	if t1, err = s.Recent(ctx, "t1"); err != nil || t1[0].ItemKey != "late" {
		t.Fatalf("t1 after a script flush: %+v, %v", t1, err)
	}
	if err := s.ForgetTenant(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if t1, err = s.Recent(ctx, "t1"); err != nil || len(t1) != 0 {
		t.Fatalf("t1 forgotten: %+v, %v", t1, err)
	}
	all, err = s.Recent(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Tenant == "t1" {
			t.Fatalf("a run of t1 left in the index of all: %+v", r)
		}
	}
	if len(all) == 0 {
		t.Fatal("the other tenants' runs went too")
	}
}
