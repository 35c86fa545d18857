package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/scheduler"
)

// testDB is this package's Redis database.
const testDB = 5

func redisAddr() string {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func newRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr(), DB: testDB})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Skipf("redis: %v", err)
	}
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{prefix + "*", "asynq:{" + prefix + "*"} {
			var cursor uint64
			for {
				keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
				if err != nil {
					break
				}
				if len(keys) > 0 {
					rdb.Del(ctx, keys...)
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
		rdb.SRem(ctx, "asynq:queues", prefix+"poll")
		rdb.Close()
	})
	return rdb, prefix
}

// asynqEnqueuer enqueues real poll tasks with a TaskID per subscription and
// slot, as the engine does, and counts what happened.
type asynqEnqueuer struct {
	client    *asynq.Client
	queue     string
	mu        sync.Mutex
	enqueued  map[string]int // "sub/slot" -> successful enqueues
	conflicts int
}

func (e *asynqEnqueuer) EnqueuePoll(ctx context.Context, sub string, slot int64, _ time.Time) error {
	payload, _ := json.Marshal(map[string]any{"sub": sub, "slot": slot})
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask("poll:run", payload),
		asynq.TaskID(fmt.Sprintf("poll:%s:%d", sub, slot)), asynq.Queue(e.queue), asynq.Retention(time.Hour))
	e.mu.Lock()
	defer e.mu.Unlock()
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		e.conflicts++
		return nil
	}
	if err != nil {
		return err
	}
	e.enqueued[fmt.Sprintf("%s/%d", sub, slot)]++
	return nil
}

// TestTwoSchedulers: two schedulers ticking the same clock over several
// slots of a test-only 1 s interval enqueue exactly one poll per
// subscription per slot.
func TestTwoSchedulers(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	client := asynq.NewClientFromRedisClient(rdb)
	queue := prefix + "poll"
	enq := &asynqEnqueuer{client: client, queue: queue, enqueued: map[string]int{}}
	var clock atomic.Int64
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(start.UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	opts := scheduler.Options{Prefix: prefix, Now: now, Batch: 7, Concurrency: 3}
	a, b := scheduler.New(rdb, enq, opts), scheduler.New(rdb, enq, opts)

	const subs = 60
	every := time.Second
	var entries []scheduler.Entry
	for i := 0; i < subs; i++ {
		entries = append(entries, scheduler.Entry{ID: fmt.Sprintf("sub%02d", i), Every: every})
	}
	if err := a.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx, entries); err != nil { // a second sync keeps the schedule
		t.Fatal(err)
	}
	end := start.Add(5 * time.Second)
	for at := start.Add(50 * time.Millisecond); !at.After(end); at = at.Add(50 * time.Millisecond) {
		clock.Store(at.UnixMilli())
		var wg sync.WaitGroup
		for _, s := range []*scheduler.Scheduler{a, b, a} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Tick(ctx, at); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	// Every subscription polls in each slot whose due time falls in
	// (start, end], once.
	want := 0
	for _, e := range entries {
		for due := scheduler.NextDue(e.ID, every, start); !due.After(end); due = due.Add(every) {
			want++
			if n := enq.enqueued[fmt.Sprintf("%s/%d", e.ID, scheduler.Slot(due, every))]; n != 1 {
				t.Errorf("%s slot at %s enqueued %d times", e.ID, due.Format(time.StampMilli), n)
			}
		}
	}
	if len(enq.enqueued) != want {
		t.Errorf("enqueued %d sub-slots, want %d", len(enq.enqueued), want)
	}
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	if info.Pending != want {
		t.Errorf("asynq holds %d pending polls, want %d", info.Pending, want)
	}
	t.Logf("%d subscriptions x 5 slots: %d polls enqueued, %d TaskID conflicts", subs, want, enq.conflicts)

	// A replica with its own schedule (a lost due set, a wrong prefix)
	// enqueueing the same slots meets the TaskID of each one.
	rogue := scheduler.New(rdb, enq, scheduler.Options{Prefix: prefix + "other:", Now: func() time.Time { return start }})
	if err := rogue.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	before := len(enq.enqueued)
	if _, err := rogue.Tick(ctx, end); err != nil {
		t.Fatal(err)
	}
	if len(enq.enqueued) != before || enq.conflicts != subs {
		t.Errorf("replica: %d new sub-slots, %d conflicts", len(enq.enqueued)-before, enq.conflicts)
	}

	// Polls spread across the interval: no 50 ms window holds more than a
	// fair share of the subscriptions.
	buckets := map[int64]int{}
	for _, e := range entries {
		buckets[scheduler.Offset(e.ID, every).Milliseconds()/100]++
	}
	for bkt, n := range buckets {
		if n > subs/3 {
			t.Errorf("offset bucket %d holds %d of %d subscriptions", bkt, n, subs)
		}
	}
}

// TestMissedSlotsCollapse: after downtime a subscription polls once, at
// its next place in its interval (not at once, not once per missed slot),
// and then keeps its offset.
func TestMissedSlotsCollapse(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rec := &recorder{}
	s := scheduler.New(rdb, rec, scheduler.Options{Prefix: prefix, Now: func() time.Time { return start }})
	every := time.Minute
	if err := s.Add(ctx, scheduler.Entry{ID: "x", Every: every}); err != nil {
		t.Fatal(err)
	}
	later := start.Add(10*time.Minute + 30*time.Second)
	if n, err := s.Tick(ctx, later); err != nil || n != 0 {
		t.Fatalf("tick right after the outage: %d %v", n, err)
	}
	due := scheduler.NextDue("x", every, later)
	if n, _ := s.Tick(ctx, due.Add(-time.Millisecond)); n != 0 {
		t.Fatal("polled before its place in the interval")
	}
	if n, err := s.Tick(ctx, due); err != nil || n != 1 {
		t.Fatalf("tick at its next due time: %d %v", n, err)
	}
	if rec.slots[0] != scheduler.Slot(due, every) {
		t.Fatalf("slot %d, want %d", rec.slots[0], scheduler.Slot(due, every))
	}
	if n, _ := s.Tick(ctx, due); n != 0 {
		t.Fatal("second tick enqueued again")
	}
	if n, _ := s.Tick(ctx, due.Add(every)); n != 1 {
		t.Fatal("the next interval did not poll")
	}
	if c := s.Counts(); c.Deferred != 1 || c.Enqueued != 2 {
		t.Fatalf("counts %+v", c)
	}
	if err := s.Remove(ctx, scheduler.Entry{ID: "x", Every: every}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Tick(ctx, later.Add(time.Hour)); n != 0 {
		t.Fatal("removed subscription polled")
	}
}

// TestFailedEnqueueRetries: a failed enqueue leaves the subscription due.
func TestFailedEnqueueRetries(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rec := &recorder{fail: 1}
	s := scheduler.New(rdb, rec, scheduler.Options{Prefix: prefix, Now: func() time.Time { return start }})
	if err := s.Add(ctx, scheduler.Entry{ID: "y", Every: time.Minute}); err != nil {
		t.Fatal(err)
	}
	at := scheduler.NextDue("y", time.Minute, start)
	if _, err := s.Tick(ctx, at); err == nil {
		t.Fatal("no error from a failed enqueue")
	}
	if n, err := s.Tick(ctx, at); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if len(rec.slots) != 1 {
		t.Fatalf("slots %v", rec.slots)
	}
}

type recorder struct {
	mu    sync.Mutex
	fail  int
	slots []int64
}

func (r *recorder) EnqueuePoll(_ context.Context, _ string, slot int64, _ time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("redis down")
	}
	r.slots = append(r.slots, slot)
	return nil
}

type counter struct{ n atomic.Int64 }

func (c *counter) EnqueuePoll(context.Context, string, int64, time.Time) error {
	c.n.Add(1)
	return nil
}

// TestHundredThousand loads 100,000 subscriptions at 5 minutes and reports
// the cost: sync time, memory, and one interval of ticks.
func TestHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixMilli())
	c := &counter{}
	s := scheduler.New(rdb, c, scheduler.Options{Prefix: prefix, Now: func() time.Time { return time.UnixMilli(clock.Load()) }})
	entries := make([]scheduler.Entry, 100_000)
	for i := range entries {
		entries[i] = scheduler.Entry{ID: fmt.Sprintf("%016x", uint64(i)*0x9E3779B97F4A7C15), Every: 5 * time.Minute}
	}
	t0 := time.Now()
	if err := s.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	syncTook := time.Since(t0)
	mem, err := s.MemoryUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := s.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	resync := time.Since(t0)
	// One interval of 1 s ticks polls every subscription once.
	t0 = time.Now()
	maxTick := 0
	for sec := 1; sec <= 300; sec++ {
		at := start.Add(time.Duration(sec) * time.Second)
		clock.Store(at.UnixMilli())
		n, err := s.Tick(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		maxTick = max(maxTick, n)
	}
	ticks := time.Since(t0)
	if c.n.Load() != 100_000 {
		t.Fatalf("polls in one interval: %d", c.n.Load())
	}
	st, _ := s.Status(ctx)
	msg := fmt.Sprintf("100,000 subscriptions @5m: sync %s (resync %s), Redis memory %d bytes (%.0f B/sub), 300 ticks %s (%.2f ms/tick, busiest tick %d polls), lag %s",
		syncTook.Round(time.Millisecond), resync.Round(time.Millisecond), mem, float64(mem)/100_000, ticks.Round(time.Millisecond),
		float64(ticks.Microseconds())/300/1000, maxTick, st.Lag)
	t.Log(msg)
	fmt.Println(msg)
}

// benchTick loads 100,000 subscriptions at 5 minutes; each iteration is one
// 1 s tick (about 333 due subscriptions).
func benchTick(b *testing.B, enq func(rdb *redis.Client, prefix string) scheduler.Enqueuer) {
	rdb, prefix := newRedis(b)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s := scheduler.New(rdb, enq(rdb, prefix), scheduler.Options{Prefix: prefix, Now: func() time.Time { return start }})
	entries := make([]scheduler.Entry, 100_000)
	for i := range entries {
		entries[i] = scheduler.Entry{ID: fmt.Sprintf("%016x", uint64(i)*0x9E3779B97F4A7C15), Every: 5 * time.Minute}
	}
	if err := s.Sync(ctx, entries); err != nil {
		b.Fatal(err)
	}
	polls := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := s.Tick(ctx, start.Add(time.Duration(i+1)*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		polls += n
	}
	b.ReportMetric(float64(polls)/float64(b.N), "polls/tick")
}

func BenchmarkTick100k(b *testing.B) {
	benchTick(b, func(*redis.Client, string) scheduler.Enqueuer { return &counter{} })
}

func BenchmarkTick100kAsynq(b *testing.B) {
	benchTick(b, func(rdb *redis.Client, prefix string) scheduler.Enqueuer {
		return &asynqEnqueuer{client: asynq.NewClientFromRedisClient(rdb), queue: prefix + "poll", enqueued: map[string]int{}}
	})
}

// TestSyncChanges: a changed interval reschedules, an unchanged one keeps
// its due time, a missing one is dropped.
func TestSyncChanges(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := start
	rec := &recorder{}
	s := scheduler.New(rdb, rec, scheduler.Options{Prefix: prefix, Now: func() time.Time { return now }})
	if err := s.Sync(ctx, []scheduler.Entry{{ID: "a", Every: time.Minute}, {ID: "b", Every: time.Minute}, {ID: "c", Every: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	dueA, _ := rdb.ZScore(ctx, s.Keys()[0], "60000:a").Result()
	now = start.Add(30 * time.Second)
	if err := s.Sync(ctx, []scheduler.Entry{{ID: "a", Every: time.Minute}, {ID: "b", Every: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	members, _ := rdb.ZRangeWithScores(ctx, s.Keys()[0], 0, -1).Result()
	got := map[string]float64{}
	for _, z := range members {
		got[z.Member.(string)] = z.Score
	}
	if len(got) != 2 || got["60000:a"] != dueA || got["3600000:b"] != float64(scheduler.NextDue("b", time.Hour, now).UnixMilli()) {
		t.Fatalf("schedule %v", got)
	}
	st, err := s.Status(ctx)
	if err != nil || st.Subscriptions != 2 {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestTwoRunning: two schedulers running on the real clock with a 200 ms
// interval: no slot is enqueued twice and no slot is skipped between a
// subscription's first and last poll.
func TestTwoRunning(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	client := asynq.NewClientFromRedisClient(rdb)
	enq := &asynqEnqueuer{client: client, queue: prefix + "poll", enqueued: map[string]int{}}
	opts := scheduler.Options{Prefix: prefix, TickEvery: 15 * time.Millisecond}
	a, b := scheduler.New(rdb, enq, opts), scheduler.New(rdb, enq, opts)
	every := 200 * time.Millisecond
	var entries []scheduler.Entry
	for i := 0; i < 20; i++ {
		entries = append(entries, scheduler.Entry{ID: fmt.Sprintf("run%02d", i), Every: every})
	}
	if err := a.Sync(ctx, entries); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []*scheduler.Scheduler{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(ctx) }()
	}
	time.Sleep(1200 * time.Millisecond)
	cancel()
	wg.Wait()
	enq.mu.Lock()
	defer enq.mu.Unlock()
	total := 0
	for _, e := range entries {
		var slots []int64
		for key, n := range enq.enqueued {
			var sub string
			var slot int64
			fmt.Sscanf(strings.Replace(key, "/", " ", 1), "%s %d", &sub, &slot)
			if sub != e.ID {
				continue
			}
			if n != 1 {
				t.Errorf("%s enqueued %d times", key, n)
			}
			slots = append(slots, slot)
		}
		sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
		for i := 1; i < len(slots); i++ {
			if slots[i] != slots[i-1]+1 {
				t.Errorf("%s skipped from slot %d to %d", e.ID, slots[i-1], slots[i])
			}
		}
		if len(slots) < 3 {
			t.Errorf("%s polled %d times in 1.2 s", e.ID, len(slots))
		}
		total += len(slots)
	}
	t.Logf("two running schedulers: %d polls for 20 subscriptions, %d TaskID conflicts", total, enq.conflicts)
}
