package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine/scheduler"
)

// oneInFlight enqueues real poll tasks with one TaskID per subscription,
// so a subscription's poll stays the only one until it is done; a
// conflict is reported as scheduler.ErrInFlight.
type oneInFlight struct {
	client *asynq.Client
	queue  string
}

func (e *oneInFlight) EnqueuePoll(ctx context.Context, sub string, slot int64, _ time.Time) error {
	payload, _ := json.Marshal(map[string]any{"sub": sub, "slot": slot})
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask("poll:run", payload), asynq.TaskID("poll:"+sub), asynq.Queue(e.queue))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("poll %s: %w", sub, scheduler.ErrInFlight)
	}
	return err
}

// TestInFlightSkips: while a subscription's poll waits in the queue, its
// next slots are skipped and counted, so the queue never holds more than
// one poll per subscription; once the poll is done the next slot polls.
func TestInFlightSkips(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	queue := prefix + "poll"
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	skips := map[string]int{}
	s := scheduler.New(rdb, &oneInFlight{client: asynq.NewClientFromRedisClient(rdb), queue: queue}, scheduler.Options{
		Prefix: prefix, Now: func() time.Time { return start },
		OnSkip: func(_ context.Context, sub string, _ int64) { mu.Lock(); skips[sub]++; mu.Unlock() }})
	const subs = 50
	var entries []scheduler.Entry
	for i := 0; i < subs; i++ {
		entries = append(entries, scheduler.Entry{ID: fmt.Sprintf("s%02d", i), Every: time.Second})
	}
	if err := s.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	pending := func() int {
		info, err := insp.GetQueueInfo(queue)
		if err != nil {
			t.Fatal(err)
		}
		return info.Pending
	}
	for at := start.Add(100 * time.Millisecond); !at.After(start.Add(5 * time.Second)); at = at.Add(100 * time.Millisecond) {
		if _, err := s.Tick(ctx, at); err != nil {
			t.Fatal(err)
		}
		if n := pending(); n > subs {
			t.Fatalf("%d polls queued for %d subscriptions", n, subs)
		}
	}
	c := s.Counts()
	if c.Enqueued != subs || c.Skipped != 4*subs || pending() != subs {
		t.Fatalf("counts %+v, pending %d", c, pending())
	}
	for _, e := range entries {
		if skips[e.ID] != 4 {
			t.Fatalf("%s skipped %d slots, want 4", e.ID, skips[e.ID])
		}
	}
	// The polls are done: the next slot of each enqueues again.
	if _, err := insp.DeleteAllPendingTasks(queue); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tick(ctx, start.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	if c := s.Counts(); c.Enqueued != 2*subs || pending() != subs {
		t.Fatalf("after the polls were done: counts %+v, pending %d", c, pending())
	}
}

// TestStretch: a stretched subscription polls its factor times less
// often; dropping the stretch brings it back to its interval.
func TestStretch(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	enq := &subCounter{n: map[string]int{}}
	now := start
	s := scheduler.New(rdb, enq, scheduler.Options{Prefix: prefix, Now: func() time.Time { return now }})
	if err := s.Sync(ctx, []scheduler.Entry{{ID: "a", Every: time.Second}, {ID: "b", Every: time.Second}}); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.SetStretch(ctx, []scheduler.Entry{{ID: "a", Every: time.Second, Stretch: 2.5}, {ID: "b", Every: time.Second, Stretch: 1}}); err != nil || len(changed) != 1 || changed["a"] != 2.5 {
		t.Fatalf("stretch a: changed %v, %v", changed, err)
	}
	if changed, err := s.SetStretch(ctx, []scheduler.Entry{{ID: "a", Every: time.Second, Stretch: 2.5}, {ID: "b", Every: time.Second}}); err != nil || len(changed) != 0 {
		t.Fatalf("same stretch again: changed %v, %v", changed, err)
	}
	run := func(from, to time.Time) {
		for at := from; at.Before(to); at = at.Add(50 * time.Millisecond) {
			now = at
			if _, err := s.Tick(ctx, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(start, start.Add(60*time.Second))
	if a, b := enq.get("a"), enq.get("b"); a < 23 || a > 25 || b != 60 {
		t.Fatalf("stretched 2.5x: a polled %d times, b %d in 60 s", a, b)
	}
	if changed, err := s.SetStretch(ctx, []scheduler.Entry{{ID: "a", Every: time.Second}, {ID: "b", Every: time.Second}}); err != nil || len(changed) != 1 || changed["a"] != 1 {
		t.Fatalf("lift the stretch: changed %v, %v", changed, err)
	}
	run(start.Add(60*time.Second), start.Add(120*time.Second))
	if a := enq.get("a"); a < 82 || a > 85 {
		t.Fatalf("stretch lifted: a polled %d times in all", a)
	}
}

type subCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *subCounter) EnqueuePoll(_ context.Context, sub string, _ int64, _ time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[sub]++
	return nil
}

func (c *subCounter) get(sub string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[sub]
}

// TestOutageSpreads: the schedulers stopped for ten intervals; on return
// each subscription polls once, and the polls spread over the interval
// instead of all starting in the first tick.
func TestOutageSpreads(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	enq := &subCounter{n: map[string]int{}}
	s := scheduler.New(rdb, enq, scheduler.Options{Prefix: prefix, Now: func() time.Time { return start }})
	const subs, every = 300, 10 * time.Second
	var entries []scheduler.Entry
	for i := 0; i < subs; i++ {
		entries = append(entries, scheduler.Entry{ID: fmt.Sprintf("o%03d", i), Every: every})
	}
	if err := s.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	for at := start; at.Before(start.Add(every)); at = at.Add(time.Second) {
		if _, err := s.Tick(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	back := start.Add(11 * every) // down for ten intervals
	before := len(enq.n)
	clear(enq.n)
	perSecond := map[int]int{}
	for at := back; !at.After(back.Add(every)); at = at.Add(100 * time.Millisecond) {
		n, err := s.Tick(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		perSecond[int(at.Sub(back)/time.Second)] += n
	}
	for _, e := range entries {
		if n := enq.n[e.ID]; n != 1 {
			t.Fatalf("%s polled %d times in the interval after the outage", e.ID, n)
		}
	}
	for sec, n := range perSecond {
		if n > subs/10*2 {
			t.Errorf("second %d after the outage started %d polls of %d: no spread", sec, n, subs)
		}
	}
	t.Logf("before the outage %d subscriptions polled; after it, polls per second %v", before, perSecond)
}
