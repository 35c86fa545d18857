package history_test

import (
	"context"
	"fmt"
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
		if err := s.AddChain(ctx, "s1", history.Chain{Recipe: "r", ItemKey: fmt.Sprint(i), Status: "completed",
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
