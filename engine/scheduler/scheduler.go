// Package scheduler keeps every subscription's next due time in one Redis
// sorted set and turns due subscriptions into poll tasks. Each subscription
// polls at a stable offset inside its interval (a hash of its id), so
// subscriptions with the same interval spread out instead of firing
// together. Any number of schedulers may tick at once: a Lua script claims
// due subscriptions atomically, so a slot is claimed once. A slot whose
// subscription still has a poll in flight is skipped and counted (the
// Enqueuer says so with ErrInFlight), so the queue holds at most one poll
// per subscription whatever the load. A stretch factor per subscription
// spaces its polls out when its API budget cannot serve its interval, and
// subscriptions overdue after an outage poll once each, spread over their
// interval.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// Enqueuer enqueues the poll of one subscription for one slot, due at due
// (the time the poll's lag is measured from). It treats an existing task
// for that slot as success.
type Enqueuer interface {
	EnqueuePoll(ctx context.Context, sub string, slot int64, due time.Time) error
}

// Entry is a subscription as the scheduler sees it.
type Entry struct {
	ID    string
	Every time.Duration
	// Stretch is how many times Every the subscription waits between
	// polls (SetStretch; 0 or 1: Every).
	Stretch float64
	// Phase places a stretched subscription in its stretched interval
	// (0 to 1; 0: a hash of its id). Subscriptions sharing a budget
	// spread evenly when their phases do.
	Phase float64
	// Align, when set, places the subscription in its interval by a hash
	// of Align instead of its id: subscriptions with the same Align and
	// interval poll at the same moment (polls that share one request).
	// A subscription already scheduled keeps its place.
	Align string
}

// placeKey is what an entry's place in its interval is a hash of.
func (e Entry) placeKey() string {
	if e.Align != "" {
		return e.Align
	}
	return e.ID
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
	// Grace is how late a subscription may be claimed and still poll at
	// once (default 5 s); one later than that (the schedulers were down)
	// polls at its next place in its interval, so the polls owed after an
	// outage spread out instead of starting together.
	Grace time.Duration
	// OnSkip, when set, is told of each slot skipped because the
	// subscription's previous poll is still in flight.
	OnSkip func(ctx context.Context, sub string, slot int64)
}

// Scheduler claims due subscriptions and enqueues their polls. Its one
// Redis key is a sorted set whose members are "<interval ms>:<subscription>"
// scored by the next due time (unix ms).
type Scheduler struct {
	client  redis.UniversalClient
	enq     Enqueuer
	opts    Options
	due     string
	stretch string // hash: subscription -> stretch factor

	enqueued, skipped, deferred atomic.Int64
}

// New returns a Scheduler over client that enqueues through enq.
func New(client redis.UniversalClient, enq Enqueuer, opts Options) *Scheduler {
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
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	keys := rdb.NewKeys(opts.Prefix)
	return &Scheduler{client: client, enq: enq, opts: opts, due: keys.SchedulerDue(), stretch: keys.SchedulerStretch()}
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
func (s *Scheduler) Keys() []string { return []string{s.due, s.stretch} }

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

// NextDue is the first due time after now of a subscription placed by
// key (its id, or its Entry.Align).
func NextDue(key string, every time.Duration, now time.Time) time.Time {
	iv, off := every.Milliseconds(), Offset(key, every).Milliseconds()
	k := (now.UnixMilli()-off)/iv + 1
	return time.UnixMilli(k*iv + off)
}

// DueAt returns when each of entries (its ID and Every) is due next in the
// schedule kept in c under prefix, in one round trip; a zero time for one
// that is not scheduled.
func DueAt(ctx context.Context, c redis.UniversalClient, prefix string, entries ...Entry) ([]time.Time, error) {
	out := make([]time.Time, len(entries))
	if len(entries) == 0 {
		return out, nil
	}
	members := make([]string, len(entries))
	for i, e := range entries {
		members[i] = member(e)
	}
	scores, err := c.ZMScore(ctx, rdb.NewKeys(prefix).SchedulerDue(), members...).Result()
	if err != nil {
		return nil, fmt.Errorf("scheduler due: %w", err)
	}
	for i, ms := range scores {
		if ms > 0 {
			out[i] = time.UnixMilli(int64(math.Ceil(ms))).UTC()
		}
	}
	return out, nil
}

// Sync makes the scheduled set equal to entries: new subscriptions get
// their next due time, changed intervals are rescheduled, others keep
// theirs (so a restart or reload keeps the schedule), and subscriptions
// not in entries are dropped.
func (s *Scheduler) Sync(ctx context.Context, entries []Entry) error {
	members, err := s.client.ZRange(ctx, s.due, 0, -1).Result()
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
	pipe := s.client.Pipeline()
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
		pipe.ZAddNX(ctx, s.due, redis.Z{Score: float64(NextDue(e.placeKey(), e.Every, now).UnixMilli()), Member: m})
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
	z := redis.Z{Score: float64(NextDue(e.placeKey(), e.Every, s.opts.Now()).UnixMilli()), Member: member(e)}
	if err := s.client.ZAddNX(ctx, s.due, z).Err(); err != nil {
		return fmt.Errorf("scheduler add %s: %w", e.ID, err)
	}
	return nil
}

// Remove unschedules a subscription.
func (s *Scheduler) Remove(ctx context.Context, e Entry) error {
	if err := s.client.ZRem(ctx, s.due, member(e)).Err(); err != nil {
		return fmt.Errorf("scheduler remove %s: %w", e.ID, err)
	}
	return nil
}

// ErrInFlight is what an Enqueuer returns (wrapped) when the previous poll
// of the subscription is still pending or running: the slot is skipped and
// counted, not queued behind it.
var ErrInFlight = errors.New("previous poll still pending or running")

// claimed is one subscription a tick claimed.
type claimed struct {
	Sub    string
	Slot   int64
	member string
	due    string // the due time it was claimed at (unix ms)
	next   string // the due time the claim set
}

// dueAt is the due time the subscription was claimed at.
func (c claimed) dueAt() time.Time {
	ms, err := strconv.ParseFloat(c.due, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(int64(math.Ceil(ms)))
}

// Tick claims the subscriptions due at now and enqueues their polls; it
// returns how many polls it enqueued. A subscription whose enqueue fails
// goes back to its due time, so the next tick tries again; one whose
// previous poll is still in flight skips the slot.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		batch, deferred, err := s.claim(ctx, now)
		if err != nil {
			return total, err
		}
		s.deferred.Add(int64(deferred))
		n, err := s.enqueue(ctx, batch)
		total += n
		if err != nil {
			return total, err
		}
		if len(batch)+deferred < s.opts.Batch {
			return total, nil
		}
	}
}

func (s *Scheduler) claim(ctx context.Context, now time.Time) ([]claimed, int, error) {
	res, err := rdb.SchedulerClaim.Run(ctx, s.client, []string{s.due, s.stretch}, now.UnixMilli(), s.opts.Batch,
		s.opts.Grace.Milliseconds()).StringSlice()
	if err != nil {
		return nil, 0, fmt.Errorf("scheduler claim: %w", err)
	}
	if len(res) == 0 {
		return nil, 0, errors.New("scheduler claim: empty reply")
	}
	deferred, err := strconv.Atoi(res[len(res)-1])
	if err != nil {
		return nil, 0, fmt.Errorf("scheduler claim: bad reply %q", res[len(res)-1])
	}
	res = res[:len(res)-1]
	out := make([]claimed, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		slot, err := strconv.ParseInt(res[i+1], 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("scheduler claim: bad reply %q", res[i+1])
		}
		sub, _, ok := parseMember(res[i])
		if !ok {
			continue
		}
		out = append(out, claimed{Sub: sub, Slot: slot, member: res[i], due: res[i+2], next: res[i+3]})
	}
	return out, deferred, nil
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
				err := s.enq.EnqueuePoll(ctx, c.Sub, c.Slot, c.dueAt())
				switch {
				case errors.Is(err, ErrInFlight):
					s.skipped.Add(1)
					if s.opts.OnSkip != nil {
						s.opts.OnSkip(ctx, c.Sub, c.Slot)
					}
					continue
				case err != nil:
					s.opts.Logger.Warn("enqueue poll", "sub", c.Sub, "slot", c.Slot, "err", err)
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, c)
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
	s.enqueued.Add(int64(done))
	for _, c := range failed {
		if err := rdb.SchedulerUnclaim.Run(ctx, s.client, []string{s.due}, c.member, c.next, c.due).Err(); err != nil {
			return done, fmt.Errorf("scheduler unclaim %s: %w", c.Sub, err)
		}
	}
	if len(failed) > 0 {
		return done, fmt.Errorf("scheduler: %d of %d polls not enqueued", len(failed), len(batch))
	}
	return done, nil
}

// SetStretch sets how many times its interval each entry waits between
// polls (Entry.Stretch; 1 or less, or a subscription not among entries:
// its interval). The factors are shared by every scheduler on the Redis. A
// subscription whose factor changes moves at once to its next due time on
// the new schedule, so a higher stretch takes effect now and a lifted one
// brings the subscription back to its own offset within one interval. It
// returns the subscriptions whose factor it changed, with their new factor
// (1 for a stretch lifted).
func (s *Scheduler) SetStretch(ctx context.Context, entries []Entry) (map[string]float64, error) {
	have, err := s.client.HGetAll(ctx, s.stretch).Result()
	if err != nil {
		return nil, fmt.Errorf("scheduler stretch: %w", err)
	}
	now := s.opts.Now()
	changed := map[string]float64{}
	pipe := s.client.Pipeline()
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		listed[e.ID] = true
		if e.Phase <= 0 || e.Phase >= 1 {
			e.Phase = hashPhase(e.placeKey())
		}
		// Stored and read back, so this grid and the claim script's agree.
		v := strconv.FormatFloat(e.Stretch, 'f', 3, 64) + ":" + strconv.FormatFloat(e.Phase, 'f', 6, 64)
		e.Stretch, e.Phase = parseStretch(v)
		switch {
		case e.Stretch > 1 && have[e.ID] != v:
			pipe.HSet(ctx, s.stretch, e.ID, v)
			next := StretchedDue(e.Every, e.Stretch, e.Phase, now)
			pipe.ZAddXX(ctx, s.due, redis.Z{Score: float64(next.UnixMilli()), Member: member(e)})
			changed[e.ID] = e.Stretch
		case e.Stretch <= 1 && have[e.ID] != "":
			pipe.HDel(ctx, s.stretch, e.ID)
			pipe.ZAddXX(ctx, s.due, redis.Z{Score: float64(NextDue(e.placeKey(), e.Every, now).UnixMilli()), Member: member(e)})
			changed[e.ID] = 1
		}
	}
	for sub := range have {
		if !listed[sub] {
			pipe.HDel(ctx, s.stretch, sub) // no longer scheduled
		}
	}
	if pipe.Len() == 0 {
		return changed, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("scheduler stretch: %w", err)
	}
	return changed, nil
}

// StretchedDue is the first due time after now of a subscription polled
// every interval times stretch, at phase (0 to 1) of the stretched
// interval (the claim script computes the same).
func StretchedDue(every time.Duration, stretch, phase float64, now time.Time) time.Time {
	step := int64(math.Floor(float64(every.Milliseconds()) * stretch))
	if step <= 0 {
		return now
	}
	off := int64(math.Floor(float64(step) * phase))
	return time.UnixMilli(((now.UnixMilli()-off)/step+1)*step + off)
}

// parseStretch reads a stored "factor:phase".
func parseStretch(v string) (stretch, phase float64) {
	fs, ps, _ := strings.Cut(v, ":")
	stretch, _ = strconv.ParseFloat(fs, 64)
	phase, _ = strconv.ParseFloat(ps, 64)
	return stretch, phase
}

// hashPhase is a stable phase of sub in (0, 1).
func hashPhase(sub string) float64 {
	h := fnv.New64a()
	h.Write([]byte(sub))
	return (float64(h.Sum64()%1_000_000) + 0.5) / 1_000_000
}

// Counts are what this Scheduler did since it started.
type Counts struct {
	// Enqueued polls, Skipped slots (the previous poll still in flight)
	// and Deferred subscriptions (overdue after an outage, moved to their
	// next place in their interval).
	Enqueued, Skipped, Deferred int64
}

// Counts returns what this Scheduler did since it started.
func (s *Scheduler) Counts() Counts {
	return Counts{Enqueued: s.enqueued.Load(), Skipped: s.skipped.Load(), Deferred: s.deferred.Load()}
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
	n, err := s.client.ZCard(ctx, s.due).Result()
	if err != nil {
		return st, fmt.Errorf("scheduler status: %w", err)
	}
	st.Subscriptions = n
	first, err := s.client.ZRangeWithScores(ctx, s.due, 0, 0).Result()
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
		n, err := s.client.MemoryUsage(ctx, k, 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("scheduler memory: %w", err)
		}
		total += n
	}
	return total, nil
}
