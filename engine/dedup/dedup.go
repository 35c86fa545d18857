// Package dedup keeps, per subscription, what a trigger has already
// delivered: a capped sorted set of recent item keys (64-bit hashes scored
// by item time), a floor under which every item counts as seen, and a
// high-water mark on item time. One Lua script per call (rdb.Dedup) decides
// and/or records; the keys and the script live in engine/internal/rdb.
package dedup

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// DefaultKeep is how many recent keys a subscription keeps by default: the
// largest count Redis still stores as a compact listpack.
const DefaultKeep = 120

// maxBatch bounds the items of one script call (Lua's unpack limit).
const maxBatch = 2000

// Item is one polled item as dedup sees it.
type Item struct {
	// Key is the item's dedup key.
	Key string
	// Time is the item's time (zero = none). Items older than or at the
	// subscription's floor count as seen.
	Time time.Time
}

// Decision says which items of a call are new.
type Decision struct {
	// Seeded is false on the first poll of a subscription: nothing had been
	// recorded yet.
	Seeded bool
	// SeededAt is when the first poll seeded the subscription (zero: not
	// seeded, or seeded before the time was kept).
	SeededAt time.Time
	// Watermark is the newest item time recorded so far (zero = none).
	Watermark time.Time
	// Known flags the items already seen (or older than the floor).
	Known []bool
	// New flags the items to fire: the unknown ones, or on a first poll the
	// newest backfill items (the last ones, as items come oldest first).
	New []bool
}

// NewCount is the number of items to fire.
func (d *Decision) NewCount() int {
	n := 0
	for _, b := range d.New {
		if b {
			n++
		}
	}
	return n
}

// Store keeps the dedup state of subscriptions in Redis.
type Store struct {
	rdb  redis.UniversalClient
	keys rdb.Keys
	keep int
}

// Options configure a Store.
type Options struct {
	// Prefix goes before every key (default rdb.DefaultPrefix).
	Prefix string
	// Keep is the default number of recent keys kept per subscription
	// (0 = DefaultKeep).
	Keep int
}

// New returns a Store over rdb.
func New(c redis.UniversalClient, opts Options) *Store {
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	return &Store{rdb: c, keys: rdb.NewKeys(opts.Prefix), keep: opts.Keep}
}

// Keys returns the Redis keys of a subscription's state.
func (s *Store) Keys(sub string) []string {
	return []string{s.keys.DedupSeen(sub), s.keys.DedupMeta(sub)}
}

// Backlog is where a poll that stopped at its page cap left off: the
// paging inputs of its next page, and the time at or under which every item
// was known before the burst. Later polls walk from there down to Floor,
// so the items beyond the cap are fired too. It is kept in the meta hash
// and written by the same script call that commits the poll's items.
type Backlog struct {
	// Next are the paging inputs of the next page to read.
	Next map[string]any `json:"next"`
	// Offset is how many items were above Next when it was saved (offset
	// and page styles: new items at the top push the rest down).
	Offset int `json:"offset,omitempty"`
	// Floor ends the walk: items at or under it were seen before.
	Floor time.Time `json:"floor"`
}

// script modes (see rdb.Dedup).
const (
	modeDecide = "decide"
	modeCommit = "commit"
	modeMark   = "mark"
)

// hashKey is the 8-byte FNV-1a hash stored for a key.
func hashKey(key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	return string(b[:])
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if m := t.UnixMilli(); m > 0 {
		return m
	}
	return 0
}

// Append is an entry pushed onto a capped list of the same subscription
// (its poll history) by the script call that commits a poll's items, so
// the record costs no round trip of its own.
type Append struct {
	// Key is the list: the subscription's rdb.Keys.HistoryPolls.
	Key string
	// Value is the entry; Keep how many entries the list keeps; TTL
	// renews the list's expiry.
	Value []byte
	Keep  int64
	TTL   time.Duration
}

// run calls the script over items, in batches of maxBatch; backlog and
// app go with the last batch.
func (s *Store) run(ctx context.Context, mode, sub string, items []Item, keep, backfill int, backlog string, app *Append) (*Decision, error) {
	if keep <= 0 {
		keep = s.keep
	}
	keys := s.Keys(sub)
	if app != nil {
		keys = append(keys, app.Key)
	}
	d := &Decision{Known: make([]bool, 0, len(items)), New: make([]bool, 0, len(items))}
	for start := 0; start < len(items) || start == 0; start += maxBatch {
		batch := items[start:min(start+maxBatch, len(items))]
		last, entry, entryKeep, entryTTL := "", "", int64(0), int64(0)
		if start+len(batch) >= len(items) {
			last = backlog
			if app != nil {
				entry, entryKeep, entryTTL = string(app.Value), app.Keep, app.TTL.Milliseconds()
			}
		}
		args := make([]any, 0, 7+2*len(batch))
		args = append(args, mode, keep, backfill-(len(items)-start-len(batch)), last, entry, entryKeep, entryTTL)
		for _, it := range batch {
			args = append(args, hashKey(it.Key), ms(it.Time))
		}
		res, err := rdb.Dedup.Run(ctx, s.rdb, keys, args...).Slice()
		if err != nil {
			return nil, fmt.Errorf("dedup %s %s: %w", mode, sub, err)
		}
		if start == 0 {
			d.Seeded = res[0].(int64) == 1
			if w, _ := strconv.ParseInt(res[1].(string), 10, 64); w > 0 {
				d.Watermark = time.UnixMilli(w).UTC()
			}
			if len(res) > 4 {
				if at, _ := strconv.ParseInt(fmt.Sprint(res[4]), 10, 64); at > 1 {
					d.SeededAt = time.UnixMilli(at).UTC()
				}
			}
		}
		if mode != modeCommit {
			known, _ := res[2].([]any)
			newf, _ := res[3].([]any)
			for i := range batch {
				d.Known = append(d.Known, known[i].(int64) == 1)
				d.New = append(d.New, newf[i].(int64) == 1)
			}
		}
		if len(items) == 0 {
			break
		}
	}
	return d, nil
}

// Decide tells which items are new without recording anything: the
// unknown ones, or on a first poll the newest backfill items (items come
// oldest first, so the last ones). One round trip.
func (s *Store) Decide(ctx context.Context, sub string, items []Item, backfill int) (*Decision, error) {
	return s.run(ctx, modeDecide, sub, items, 0, backfill, "", nil)
}

// Commit records items as seen (all of them: known ones refresh their
// place), marks the subscription seeded, raises the watermark and trims
// the set to keep keys (0 = the store's default), raising the floor to the
// newest time trimmed. One round trip.
func (s *Store) Commit(ctx context.Context, sub string, items []Item, keep int) error {
	_, err := s.run(ctx, modeCommit, sub, items, keep, 0, "", nil)
	return err
}

// CommitAppend commits items as Commit does and, in the same script call,
// replaces the subscription's backlog with bl when setBacklog (nil removes
// it) and pushes app (when not nil) onto its list: the cursor of a capped
// poll moves exactly when its items are recorded, so a crash between the
// two cannot lose the items below the cap or skip past them, and the
// poll's record is written with its items.
func (s *Store) CommitAppend(ctx context.Context, sub string, items []Item, keep int, setBacklog bool, bl *Backlog, app *Append) error {
	arg := ""
	if setBacklog {
		var err error
		if arg, err = backlogArg(sub, bl); err != nil {
			return err
		}
	}
	_, err := s.run(ctx, modeCommit, sub, items, keep, 0, arg, app)
	return err
}

// backlogArg is the script's backlog argument for bl ("-" removes it).
func backlogArg(sub string, bl *Backlog) (string, error) {
	if bl == nil {
		return "-", nil
	}
	b, err := json.Marshal(bl)
	if err != nil {
		return "", fmt.Errorf("dedup backlog %s: %w", sub, err)
	}
	return string(b), nil
}

// Mark decides and records in one round trip, for callers that need no
// step between the two. (Above 2,000 items it takes two: a decide over all,
// then a commit, so that a first poll is judged as one.)
func (s *Store) Mark(ctx context.Context, sub string, items []Item, keep, backfill int) (*Decision, error) {
	if len(items) <= maxBatch {
		return s.run(ctx, modeMark, sub, items, keep, backfill, "", nil)
	}
	d, err := s.Decide(ctx, sub, items, backfill)
	if err != nil {
		return nil, err
	}
	return d, s.Commit(ctx, sub, items, keep)
}

// State is the summary of a subscription's dedup state.
type State struct {
	// Seeded is true once a poll has been recorded.
	Seeded bool
	// Watermark is the newest item time recorded (zero = none).
	Watermark time.Time
	// Floor is the time at or under which every item counts as seen.
	Floor time.Time
	// Backlog is where a capped poll left off (nil: none).
	Backlog *Backlog
}

// State reads sub's seeded flag, watermark and floor in one round trip.
func (s *Store) State(ctx context.Context, sub string) (State, error) {
	var st State
	v, err := s.rdb.HMGet(ctx, s.Keys(sub)[1], "seeded", "hwm", "floor", "backlog").Result()
	if err != nil {
		return st, fmt.Errorf("dedup state %s: %w", sub, err)
	}
	st.Seeded = v[0] != nil
	if str, ok := v[1].(string); ok {
		if n, _ := strconv.ParseInt(str, 10, 64); n > 0 {
			st.Watermark = time.UnixMilli(n).UTC()
		}
	}
	if str, ok := v[2].(string); ok {
		if n, _ := strconv.ParseInt(str, 10, 64); n > 0 {
			st.Floor = time.UnixMilli(n).UTC()
		}
	}
	if str, ok := v[3].(string); ok {
		st.Backlog = &Backlog{}
		if err := json.Unmarshal([]byte(str), st.Backlog); err != nil {
			return st, fmt.Errorf("dedup backlog %s: %w", sub, err)
		}
	}
	return st, nil
}

// Watermark returns the newest item time recorded for sub (zero = none).
func (s *Store) Watermark(ctx context.Context, sub string) (time.Time, error) {
	st, err := s.State(ctx, sub)
	return st.Watermark, err
}

// Reset forgets sub's state: its next poll seeds again.
func (s *Store) Reset(ctx context.Context, sub string) error {
	if err := s.rdb.Del(ctx, s.Keys(sub)...).Err(); err != nil {
		return fmt.Errorf("dedup reset %s: %w", sub, err)
	}
	return nil
}

// MemoryUsage sums MEMORY USAGE over sub's keys, in bytes.
func (s *Store) MemoryUsage(ctx context.Context, sub string) (int64, error) {
	var total int64
	for _, k := range s.Keys(sub) {
		n, err := s.rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil && !rdb.IsNil(err) {
			return 0, fmt.Errorf("dedup memory %s: %w", sub, err)
		}
		total += n
	}
	return total, nil
}
