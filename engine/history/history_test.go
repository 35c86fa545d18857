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

// TestEachChains: the runs of many subscriptions read in one go come back
// in the order asked, newest first, at most n each (all kept when n is 0),
// across the batches the reads are cut into.
func TestEachChains(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	s := history.New(rdb, history.Options{Prefix: prefix, Keep: 5})
	var subs []string
	for i := range 1203 {
		sub := fmt.Sprintf("s%04d", i)
		subs = append(subs, sub)
		for j := range i % 8 {
			if err := s.AddChain(ctx, sub, history.Chain{TaskID: fmt.Sprintf("%s-%d", sub, j), Status: "completed"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range []int{0, 2} {
		var got [][]history.Chain
		err := s.EachChains(ctx, subs, n, func(i int, runs []history.Chain) {
			if i != len(got) {
				t.Fatalf("n=%d: subscription %d given after %d others", n, i, len(got))
			}
			got = append(got, runs)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(subs) {
			t.Fatalf("n=%d: %d lists for %d subscriptions", n, len(got), len(subs))
		}
		for i, cs := range got {
			want := min(i%8, 5)
			if n > 0 {
				want = min(want, n)
			}
			if len(cs) != want {
				t.Fatalf("n=%d, %s: %d runs, want %d", n, subs[i], len(cs), want)
			}
			if want > 0 && cs[0].TaskID != fmt.Sprintf("%s-%d", subs[i], i%8-1) {
				t.Fatalf("n=%d, %s: newest is %s", n, subs[i], cs[0].TaskID)
			}
		}
	}
}
