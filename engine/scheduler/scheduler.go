// Package scheduler keeps every subscription's next due time in one Redis
// sorted set and turns due subscriptions into poll tasks. Each subscription
// polls at a stable offset inside its interval (a hash of its id), so
// subscriptions with the same interval spread out instead of firing
// together. Any number of schedulers may tick at once: a Lua script claims
// due subscriptions atomically, and the poll task of a slot carries a task
// id made of subscription and slot, so a slot is never enqueued twice.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Enqueuer enqueues the poll of one subscription for one slot. It treats
// an existing task for that slot as success.
type Enqueuer interface {
	EnqueuePoll(ctx context.Context, sub string, slot int64) error
}

// Entry is a subscription as the scheduler sees it.
type Entry struct {
	ID    string
	Every time.Duration
}

// Options configure a Scheduler.
type Options struct {
	// Prefix goes before the scheduler's keys.
	Prefix string
	// Batch is how many due subscriptions one claim takes (default 1000).
	Batch int
	// Concurrency is how many enqueues run at once (default 8).
	Concurrency int
	// TickEvery is the pause between ticks in Run (default 1 s).
	TickEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives enqueue failures (default slog.Default()).
	Logger *slog.Logger
}

// Scheduler claims due subscriptions and enqueues their polls. Its one
// Redis key is a sorted set whose members are "<interval ms>:<subscription>"
// scored by the next due time (unix ms).
type Scheduler struct {
	rdb  redis.UniversalClient
	enq  Enqueuer
	opts Options
	due  string
}

// New returns a Scheduler over rdb that enqueues through enq.
func New(rdb redis.UniversalClient, enq Enqueuer, opts Options) *Scheduler {
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.TickEvery <= 0 {
		opts.TickEvery = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Scheduler{rdb: rdb, enq: enq, opts: opts, due: opts.Prefix + "{sched}:due"}
}

// member is the sorted-set member of an entry.
func member(e Entry) string {
	return strconv.FormatInt(e.Every.Milliseconds(), 10) + ":" + e.ID
}

// parseMember splits a member into the subscription and its interval.
func parseMember(m string) (sub string, every int64, ok bool) {
	i := strings.IndexByte(m, ':')
	if i <= 0 {
		return "", 0, false
	}
	every, err := strconv.ParseInt(m[:i], 10, 64)
	if err != nil || every <= 0 {
		return "", 0, false
	}
	return m[i+1:], every, true
}

// Keys returns the scheduler's Redis keys.
func (s *Scheduler) Keys() []string { return []string{s.due} }

// Offset is sub's stable place inside an interval of every.
func Offset(sub string, every time.Duration) time.Duration {
	ms := every.Milliseconds()
	if ms <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(sub))
	return time.Duration(h.Sum64()%uint64(ms)) * time.Millisecond
}

// Slot is the number of the slot due at t for an interval of every.
func Slot(t time.Time, every time.Duration) int64 {
	return t.UnixMilli() / every.Milliseconds()
}

// NextDue is the first due time of sub after now.
func NextDue(sub string, every time.Duration, now time.Time) time.Time {
	iv, off := every.Milliseconds(), Offset(sub, every).Milliseconds()
	k := (now.UnixMilli()-off)/iv + 1
	return time.UnixMilli(k*iv + off)
}

// Sync makes the scheduled set equal to entries: new subscriptions get
// their next due time, changed intervals are rescheduled, others keep
// theirs (so a restart or reload keeps the schedule), and subscriptions
// not in entries are dropped.
func (s *Scheduler) Sync(ctx context.Context, entries []Entry) error {
	members, err := s.rdb.ZRange(ctx, s.due, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("scheduler sync: %w", err)
	}
	have := make(map[string]string, len(members)) // sub -> member
	for _, m := range members {
		if sub, _, ok := parseMember(m); ok {
			have[sub] = m
		}
	}
	now := s.opts.Now()
	want := make(map[string]bool, len(entries))
	pipe := s.rdb.Pipeline()
	n := 0
	flush := func(force bool) error {
		if n == 0 || (!force && n < 5000) {
			return nil
		}
		n = 0
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("scheduler sync: %w", err)
		}
		return nil
	}
	for _, e := range entries {
		if e.Every < time.Millisecond {
			return fmt.Errorf("scheduler sync %s: interval %s too short", e.ID, e.Every)
		}
		want[e.ID] = true
		m := member(e)
		old, ok := have[e.ID]
		if ok && old == m {
			continue
		}
		if ok {
			pipe.ZRem(ctx, s.due, old)
		}
		pipe.ZAddNX(ctx, s.due, redis.Z{Score: float64(NextDue(e.ID, e.Every, now).UnixMilli()), Member: m})
		n += 2
		if err := flush(false); err != nil {
			return err
		}
	}
	for sub, m := range have {
		if !want[sub] {
			pipe.ZRem(ctx, s.due, m)
			n++
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	return flush(true)
}

// Add schedules one subscription; one already scheduled at the same
// interval keeps its due time. To change an interval, Remove the old entry
// first (or use Sync).
func (s *Scheduler) Add(ctx context.Context, e Entry) error {
	if e.Every < time.Millisecond {
		return fmt.Errorf("scheduler add %s: interval %s too short", e.ID, e.Every)
	}
	z := redis.Z{Score: float64(NextDue(e.ID, e.Every, s.opts.Now()).UnixMilli()), Member: member(e)}
	if err := s.rdb.ZAddNX(ctx, s.due, z).Err(); err != nil {
		return fmt.Errorf("scheduler add %s: %w", e.ID, err)
	}
	return nil
}

// Remove unschedules a subscription.
func (s *Scheduler) Remove(ctx context.Context, e Entry) error {
	if err := s.rdb.ZRem(ctx, s.due, member(e)).Err(); err != nil {
		return fmt.Errorf("scheduler remove %s: %w", e.ID, err)
	}
	return nil
}

// claim takes up to ARGV[2] subscriptions due at ARGV[1] (unix ms), moves
// each to its next due time after now (missed slots collapse into the
// latest) and returns {member, slot, previous due} triples.
var claim = redis.NewScript(`
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #due, 2 do
  local m, score = due[i], tonumber(due[i + 1])
  local every = tonumber(string.match(m, '^(%d+):'))
  if every and every > 0 then
    local latest = score + math.floor((now - score) / every) * every
    redis.call('ZADD', KEYS[1], latest + every, m)
    out[#out + 1] = m
    out[#out + 1] = string.format('%d', math.floor(latest / every))
    out[#out + 1] = string.format('%d', score)
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
`)

// unclaim puts a subscription back to its previous due time, when no other
// claim moved it since.
var unclaim = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
`)

// claimed is one subscription a tick claimed.
type claimed struct {
	Sub    string
	Slot   int64
	member string
	every  int64 // ms
	due    int64 // the due time it was claimed at (unix ms)
}

// Tick claims the subscriptions due at now and enqueues their polls; it
// returns how many polls it enqueued. A subscription whose enqueue fails
// goes back to its due time, so the next tick tries again.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		batch, err := s.claim(ctx, now)
		if err != nil {
			return total, err
		}
		n, err := s.enqueue(ctx, batch)
		total += n
		if err != nil {
			return total, err
		}
		if len(batch) < s.opts.Batch {
			return total, nil
		}
	}
}

func (s *Scheduler) claim(ctx context.Context, now time.Time) ([]claimed, error) {
	res, err := claim.Run(ctx, s.rdb, []string{s.due}, now.UnixMilli(), s.opts.Batch).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("scheduler claim: %w", err)
	}
	out := make([]claimed, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		slot, err1 := strconv.ParseInt(res[i+1], 10, 64)
		due, err2 := strconv.ParseInt(res[i+2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("scheduler claim: bad reply %q %q", res[i+1], res[i+2])
		}
		sub, every, ok := parseMember(res[i])
		if !ok {
			continue
		}
		out = append(out, claimed{Sub: sub, Slot: slot, member: res[i], every: every, due: due})
	}
	return out, nil
}

func (s *Scheduler) enqueue(ctx context.Context, batch []claimed) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		done   int
		failed []claimed
	)
	work := make(chan claimed)
	for w := 0; w < min(s.opts.Concurrency, len(batch)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				err := s.enq.EnqueuePoll(ctx, c.Sub, c.Slot)
				mu.Lock()
				if err != nil {
					failed = append(failed, c)
					s.opts.Logger.Warn("enqueue poll", "sub", c.Sub, "slot", c.Slot, "err", err)
				} else {
					done++
				}
				mu.Unlock()
			}
		}()
	}
	for _, c := range batch {
		work <- c
	}
	close(work)
	wg.Wait()
	for _, c := range failed {
		next := c.Slot*c.every + (c.due % c.every) + c.every
		if err := unclaim.Run(ctx, s.rdb, []string{s.due}, c.member, next, c.due).Err(); err != nil {
			return done, fmt.Errorf("scheduler unclaim %s: %w", c.Sub, err)
		}
	}
	if len(failed) > 0 {
		return done, fmt.Errorf("scheduler: %d of %d polls not enqueued", len(failed), len(batch))
	}
	return done, nil
}

// Run ticks until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.TickEvery)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx, s.opts.Now()); err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("scheduler tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Status is the state of the schedule.
type Status struct {
	// Subscriptions is the number scheduled.
	Subscriptions int64
	// Lag is how late the most overdue subscription is (0 when none is).
	Lag time.Duration
}

// Status reports the number of subscriptions and the current lag.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	var st Status
	n, err := s.rdb.ZCard(ctx, s.due).Result()
	if err != nil {
		return st, fmt.Errorf("scheduler status: %w", err)
	}
	st.Subscriptions = n
	first, err := s.rdb.ZRangeWithScores(ctx, s.due, 0, 0).Result()
	if err != nil {
		return st, fmt.Errorf("scheduler status: %w", err)
	}
	if len(first) == 1 {
		if lag := s.opts.Now().Sub(time.UnixMilli(int64(first[0].Score))); lag > 0 {
			st.Lag = lag
		}
	}
	return st, nil
}

// MemoryUsage sums MEMORY USAGE over the scheduler's keys (SAMPLES 0: every
// element counted), in bytes.
func (s *Scheduler) MemoryUsage(ctx context.Context) (int64, error) {
	var total int64
	for _, k := range s.Keys() {
		n, err := s.rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("scheduler memory: %w", err)
		}
		total += n
	}
	return total, nil
}
