// Package history keeps a bounded run history in Redis: per subscription the
// last polls and the last chain runs, each as a capped list, and an index
// of the newest chain runs of all subscriptions and of each tenant, so a
// listing of recent runs reads one page's worth whatever the number of
// subscriptions.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// DefaultKeep is how many polls and how many chain runs are kept per
// subscription.
const DefaultKeep = 50

// Poll is what one poll of a subscription did.
type Poll struct {
	// Sub and Recipe are the subscription polled and its recipe.
	Sub    string `json:"sub,omitempty"`
	Recipe string `json:"recipe,omitempty"`
	// Time is when the poll started, Took how long it ran; Slot is the
	// scheduling slot it polled.
	Time time.Time     `json:"time"`
	Took time.Duration `json:"took"`
	Slot int64         `json:"slot"`
	// Lag is how long after its due time the poll started, at least 1 ms
	// (0: the due time is not known, as for a poll run by hand).
	Lag time.Duration `json:"lag,omitempty"`
	// Read is the number of distinct items read.
	Read int `json:"read"`
	// New is the number of items found new; Enqueued of those got a new
	// chain task, Duplicates met an existing one (a poll retried after a
	// crash).
	New        int `json:"new"`
	Enqueued   int `json:"enqueued"`
	Duplicates int `json:"duplicates,omitempty"`
	// Requests is the number of API calls (pages) the poll made.
	Requests int `json:"requests"`
	// Shared is the number of pages the poll read from a call another
	// poll of its connection made in the same slot (not in Requests).
	Shared int `json:"shared,omitempty"`
	// Seeded is true for a subscription's first poll.
	Seeded bool `json:"seeded,omitempty"`
	// Capped is true when the poll stopped at its page cap rather than at
	// the end of the list or at items seen before.
	Capped bool `json:"capped,omitempty"`
	// Skipped says why the slot was not polled (a paused connection, a
	// daily budget running low).
	Skipped string `json:"skipped,omitempty"`
	// Stretch, on a record of a changed stretch, is how many times its
	// interval the subscription now waits between polls (1: back to its
	// interval), and StretchReason says why.
	Stretch       float64 `json:"stretch,omitempty"`
	StretchReason string  `json:"stretch_reason,omitempty"`
	// Error is the failure, "" on success.
	Error string `json:"error,omitempty"`
}

// Step is one step of a chain run.
type Step struct {
	Op     string `json:"op"`
	Status string `json:"status"` // done, resumed, failed
	// ID is the id of what the step wrote, when its output names one.
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
	// Input is the step's rendered input and Output what it returned
	// (JSON, cut at MaxStepJSON bytes); Took is how long it ran.
	Input  json.RawMessage `json:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	Took   time.Duration   `json:"took,omitempty"`
}

// MaxStepJSON caps a step's recorded input and output, so one large
// response does not fill the history.
const MaxStepJSON = 8 << 10

// StepJSON encodes v for a Step's Input or Output: as JSON when it fits in
// MaxStepJSON bytes, otherwise as a JSON string of its first bytes ending
// in "…(cut)".
func StepJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	if len(b) <= MaxStepJSON {
		return b
	}
	cut, _ := json.Marshal(string(b[:MaxStepJSON]) + "…(cut)")
	return cut
}

// Chain is one run (attempt) of a chain task.
type Chain struct {
	Time    time.Time     `json:"time"`
	Took    time.Duration `json:"took"`
	Recipe  string        `json:"recipe"`
	ItemKey string        `json:"item_key"`
	TaskID  string        `json:"task_id,omitempty"`
	// Status is completed, filtered, retry, failed or paused.
	Status string `json:"status"`
	Steps  []Step `json:"steps,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Store reads and writes history in Redis.
type Store struct {
	rdb                    redis.UniversalClient
	keys                   rdb.Keys
	keep                   int64
	recentKeep, tenantKeep int64
	ttl                    time.Duration
}

// Options configure a Store; zero values take defaults.
type Options struct {
	// Prefix is put before every key (default rdb.DefaultPrefix).
	Prefix string
	// Keep is the number of entries kept per list (default DefaultKeep).
	Keep int
	// RecentKeep and TenantRecentKeep are how many runs the index of all
	// subscriptions and a tenant's index keep (defaults DefaultRecentKeep,
	// DefaultTenantRecentKeep).
	RecentKeep, TenantRecentKeep int
	// TTL expires a subscription's history when it stops running
	// (default 7 days).
	TTL time.Duration
}

// New returns a Store on rdb.
func New(c redis.UniversalClient, o Options) *Store {
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	if o.TTL <= 0 {
		o.TTL = 7 * 24 * time.Hour
	}
	if o.RecentKeep <= 0 {
		o.RecentKeep = DefaultRecentKeep
	}
	if o.TenantRecentKeep <= 0 {
		o.TenantRecentKeep = DefaultTenantRecentKeep
	}
	return &Store{rdb: c, keys: rdb.NewKeys(o.Prefix), keep: int64(o.Keep), recentKeep: int64(o.RecentKeep),
		tenantKeep: int64(o.TenantRecentKeep), ttl: o.TTL}
}

// push adds an encoded entry to a capped list and renews its expiry in one
// script call.
func (s *Store) push(ctx context.Context, key string, b []byte) error {
	return rdb.HistoryPush.Run(ctx, s.rdb, []string{key}, b, s.keep, s.ttl.Milliseconds()).Err()
}

// storedPoll is how a poll is stored: Poll's fields under the same names,
// without the subscription (the list's key names it; Polls puts it back)
// and the recipe (the subscription names it), its time to the millisecond
// and its zero counts left out. Records stored whole decode into it too.
type storedPoll struct {
	Sub           string        `json:"sub,omitempty"`
	Recipe        string        `json:"recipe,omitempty"`
	Time          time.Time     `json:"time"`
	Took          time.Duration `json:"took,omitempty"`
	Slot          int64         `json:"slot,omitempty"`
	Lag           time.Duration `json:"lag,omitempty"`
	Read          int           `json:"read,omitempty"`
	New           int           `json:"new,omitempty"`
	Enqueued      int           `json:"enqueued,omitempty"`
	Duplicates    int           `json:"duplicates,omitempty"`
	Requests      int           `json:"requests,omitempty"`
	Shared        int           `json:"shared,omitempty"`
	Seeded        bool          `json:"seeded,omitempty"`
	Capped        bool          `json:"capped,omitempty"`
	Skipped       string        `json:"skipped,omitempty"`
	Stretch       float64       `json:"stretch,omitempty"`
	StretchReason string        `json:"stretch_reason,omitempty"`
	Error         string        `json:"error,omitempty"`
}

func encodePoll(p Poll) ([]byte, error) {
	sp := storedPoll(p)
	sp.Sub, sp.Recipe = "", ""
	sp.Time = p.Time.Truncate(time.Millisecond)
	return json.Marshal(sp)
}

// AddPoll records a poll of sub.
func (s *Store) AddPoll(ctx context.Context, sub string, p Poll) error {
	b, err := encodePoll(p)
	if err == nil {
		err = s.push(ctx, s.keys.HistoryPolls(sub), b)
	}
	if err != nil {
		return fmt.Errorf("history poll %s: %w", sub, err)
	}
	return nil
}

// PollAppend returns the record of a poll of sub as a dedup.Append, for
// the dedup commit to push in the same script call (what AddPoll would
// store).
func (s *Store) PollAppend(sub string, p Poll) (*dedup.Append, error) {
	b, err := encodePoll(p)
	if err != nil {
		return nil, fmt.Errorf("history poll %s: %w", sub, err)
	}
	return &dedup.Append{Key: s.keys.HistoryPolls(sub), Value: b, Keep: s.keep, TTL: s.ttl}, nil
}

// AddChain records a chain run of sub, a subscription of tenant ("" for
// none): in the subscription's history and in the recent-runs indexes of
// all subscriptions and of the tenant, in one round trip.
func (s *Store) AddChain(ctx context.Context, tenant, sub string, c Chain) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("history chain %s: %w", sub, err)
	}
	entry, err := json.Marshal(recentOf(tenant, sub, c))
	if err != nil {
		return fmt.Errorf("history chain %s: %w", sub, err)
	}
	key := s.keys.HistoryChains(sub)
	pipe := s.rdb.Pipeline()
	push := rdb.HistoryPush.EvalSha(ctx, pipe, []string{key}, b, s.keep, s.ttl.Milliseconds())
	z := redis.Z{Score: float64(c.Time.UnixMilli()), Member: entry}
	index := []redis.Cmder{pipe.ZAdd(ctx, s.keys.RecentRuns(), z),
		pipe.ZRemRangeByRank(ctx, s.keys.RecentRuns(), 0, -s.recentKeep-1)}
	if tenant != "" {
		tk := s.keys.TenantRecentRuns(tenant)
		index = append(index, pipe.ZAdd(ctx, tk, z), pipe.ZRemRangeByRank(ctx, tk, 0, -s.tenantKeep-1),
			pipe.PExpire(ctx, tk, s.ttl))
	}
	_, err = pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(push.Err(), "NOSCRIPT") {
		// Redis lost its scripts (a restart): Run loads the push's again.
		err = s.push(ctx, key, b)
		for _, cmd := range index {
			err = errors.Join(err, cmd.Err())
		}
	}
	if err != nil {
		return fmt.Errorf("history chain %s: %w", sub, err)
	}
	return nil
}

// DefaultRecentKeep is how many runs the index of all subscriptions keeps,
// DefaultTenantRecentKeep how many a tenant's index keeps.
const (
	DefaultRecentKeep       = 1000
	DefaultTenantRecentKeep = 100
)

// recentErrorMax is how much of a run's error the recent-runs index keeps
// (the subscription's history keeps it whole).
const recentErrorMax = 500

// Recent is a chain run as the recent-runs index keeps it: without its
// steps, with the subscription and the tenant it belongs to.
type Recent struct {
	Sub    string `json:"sub"`
	Tenant string `json:"tenant,omitempty"`
	Chain
}

func recentOf(tenant, sub string, c Chain) Recent {
	c.Steps = nil
	if len(c.Error) > recentErrorMax {
		c.Error = strings.ToValidUTF8(c.Error[:recentErrorMax], "") + "…"
	}
	return Recent{Sub: sub, Tenant: tenant, Chain: c}
}

// Recent returns the newest chain runs of every subscription, or of
// tenant's when tenant is not "", newest first (at most RecentKeep, or
// TenantRecentKeep).
func (s *Store) Recent(ctx context.Context, tenant string) ([]Recent, error) {
	key := s.keys.RecentRuns()
	if tenant != "" {
		key = s.keys.TenantRecentRuns(tenant)
	}
	raws, err := s.rdb.ZRevRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("recent runs: %w", err)
	}
	out := make([]Recent, 0, len(raws))
	for _, raw := range raws {
		var r Recent
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return nil, fmt.Errorf("recent runs: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ForgetTenant deletes tenant's recent-runs index and its runs in the
// index of all subscriptions.
func (s *Store) ForgetTenant(ctx context.Context, tenant string) error {
	all, err := s.rdb.ZRange(ctx, s.keys.RecentRuns(), 0, -1).Result()
	if err != nil {
		return fmt.Errorf("forget the runs of tenant %s: %w", tenant, err)
	}
	var theirs []any
	for _, raw := range all {
		var r Recent
		if json.Unmarshal([]byte(raw), &r) == nil && r.Tenant == tenant {
			theirs = append(theirs, raw)
		}
	}
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.keys.TenantRecentRuns(tenant))
	if len(theirs) > 0 {
		pipe.ZRem(ctx, s.keys.RecentRuns(), theirs...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("forget the runs of tenant %s: %w", tenant, err)
	}
	return nil
}

func list[T any](ctx context.Context, s *Store, key string, n int) ([]T, error) {
	if n <= 0 {
		n = int(s.keep)
	}
	raw, err := s.rdb.LRange(ctx, key, 0, int64(n)-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := json.Unmarshal([]byte(r), &v); err != nil {
			return nil, fmt.Errorf("history %s: %w", key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Polls returns the last n polls of sub, newest first (n <= 0: all kept).
// Their Sub is sub; Recipe is set only on records stored with it.
func (s *Store) Polls(ctx context.Context, sub string, n int) ([]Poll, error) {
	stored, err := list[storedPoll](ctx, s, s.keys.HistoryPolls(sub), n)
	polls := make([]Poll, len(stored))
	for i, sp := range stored {
		polls[i] = Poll(sp)
		polls[i].Sub = sub
	}
	return polls, err
}

// Chains returns the last n chain runs of sub, newest first.
func (s *Store) Chains(ctx context.Context, sub string, n int) ([]Chain, error) {
	return list[Chain](ctx, s, s.keys.HistoryChains(sub), n)
}

// Delete forgets the history of sub.
func (s *Store) Delete(ctx context.Context, sub string) error {
	if err := s.rdb.Del(ctx, s.keys.HistoryPolls(sub), s.keys.HistoryChains(sub)).Err(); err != nil {
		return fmt.Errorf("history delete %s: %w", sub, err)
	}
	return nil
}
