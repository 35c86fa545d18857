package history_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/history"
)

func TestBounded(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: 8})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("redis: %v", err)
	}
	prefix := fmt.Sprintf("histtest:%d:", time.Now().UnixNano())
	defer func() {
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	}()
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
