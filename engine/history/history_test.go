package history_test

import (
	"context"
	"fmt"
	"testing"

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
