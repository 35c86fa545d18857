package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// loadRecipe polls new contacts and tags each with the recipe's name.
const loadRecipe = `name: %[1]s
trigger:
  op: ghl.contacts.search
  connection: acme
  every: 1m
  params:
    sort: [{field: dateAdded, direction: desc}]
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: [%[1]s]}
`

// loadEnv is a simulator and a folder of recipes that engines share.
type loadEnv struct {
	t      *testing.T
	rdb    *redis.Client
	prefix string
	cat    *catalog.Catalog
	srv    *sim.Server
	ts     *httptest.Server
	conns  *auth.Static
	loc    string
	dir    string
	subs   []string
	logs   *syncBuffer
}

func newLoadEnv(t *testing.T, recipes int, cfg sim.Config) *loadEnv {
	rdb, prefix := testRedis(t)
	cat := testCatalog(t)
	e := &loadEnv{t: t, rdb: rdb, prefix: prefix, cat: cat, loc: "locLOAD0000000000000", dir: t.TempDir(), logs: &syncBuffer{}}
	e.srv, e.ts, _, e.conns = simConn(t, cat, e.loc, cfg)
	for i := 0; i < recipes; i++ {
		name := fmt.Sprintf("r%03d", i)
		if err := os.WriteFile(filepath.Join(e.dir, name+".yaml"), []byte(fmt.Sprintf(loadRecipe, name)), 0o600); err != nil {
			t.Fatal(err)
		}
		e.subs = append(e.subs, engine.SubscriptionID(name, "acme"))
	}
	t.Cleanup(func() { cleanAsynq(rdb, prefix) })
	return e
}

// cleanAsynq deletes the asynq queues of prefix.
func cleanAsynq(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "asynq:{"+prefix+"*", 1000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for _, q := range []string{engine.QueuePoll, engine.QueueChain, engine.QueueCritical} {
		rdb.SRem(ctx, "asynq:queues", engine.QueueName(prefix, q))
	}
}

// start runs an engine until the returned stop is called; limited puts the
// shared rate limiter (and its budget) in front of the simulator.
func (e *loadEnv) start(cfg engine.Config, limited bool) (*engine.Engine, func()) {
	e.t.Helper()
	tcfg := transport.Config{Catalog: e.cat, Connections: e.conns, BaseURL: e.ts.URL}
	if limited {
		lim := ratelimit.New(ratelimit.Config{Redis: e.rdb, Prefix: e.prefix, Catalog: e.cat})
		tcfg.Limiter = lim
		cfg.Budget = &engine.LimiterBudget{Limiter: lim, Connections: e.conns}
	}
	cfg.Catalog, cfg.Caller, cfg.Redis, cfg.Recipes, cfg.Prefix = e.cat, transport.New(tcfg), e.rdb, []string{e.dir}, e.prefix
	cfg.ShutdownTimeout = 3 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := engine.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	return eng, func() { cancel(); <-done }
}

// queued returns the poll tasks in the queue (pending, running, waiting
// for a retry) by subscription, read in one transaction.
func (e *loadEnv) queued() (map[string]int, int) {
	e.t.Helper()
	ctx := context.Background()
	base := "asynq:{" + engine.QueueName(e.prefix, engine.QueuePoll) + "}:"
	tx := e.rdb.TxPipeline()
	lists := []*redis.StringSliceCmd{tx.LRange(ctx, base+"pending", 0, -1), tx.LRange(ctx, base+"active", 0, -1),
		tx.ZRange(ctx, base+"retry", 0, -1), tx.ZRange(ctx, base+"scheduled", 0, -1)}
	if _, err := tx.Exec(ctx); err != nil {
		e.t.Fatal(err)
	}
	by := map[string]int{}
	total := 0
	for _, l := range lists {
		for _, id := range l.Val() {
			by[strings.TrimPrefix(id, "poll:")]++
			total++
		}
	}
	return by, total
}

// polls returns the polls (not skips or stretch changes) recorded for sub
// from since on, oldest first, and the largest stretch recorded.
func polls(t *testing.T, h *history.Store, sub string, since time.Time) ([]history.Poll, float64) {
	t.Helper()
	all, err := h.Polls(context.Background(), sub, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []history.Poll
	stretch := 1.0
	for _, p := range all {
		stretch = max(stretch, p.Stretch)
		if p.Skipped == "" && p.Stretch == 0 && !p.Time.Before(since) {
			out = append(out, p)
		}
	}
	slices.Reverse(out)
	return out, stretch
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestTenTimesBudget: 200 recipes on one location polled every 2 s ask for
// ten times the location's budget (100 requests / 10 s). Three engines on
// one Redis for 120 s: the poll queue never holds more than one poll per
// subscription, no request is answered 429, at least 90 % of the budget is
// used, and every subscription is polled at least once every interval ×
// stretch.
func TestTenTimesBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("120 s under load")
	}
	const recipes, every, run = 200, 2 * time.Second, 120 * time.Second
	e := newLoadEnv(t, recipes, sim.Config{})
	start := time.Now()
	var engines []*engine.Engine
	var stops []func()
	for i := 0; i < 3; i++ {
		eng, stop := e.start(engine.Config{Every: every, PollConcurrency: 8, ChainConcurrency: 2, TickEvery: 250 * time.Millisecond}, true)
		engines, stops = append(engines, eng), append(stops, stop)
	}
	maxQueued := 0
	for time.Since(start) < run {
		time.Sleep(time.Second)
		by, total := e.queued()
		maxQueued = max(maxQueued, total)
		for sub, n := range by {
			if n > 1 {
				t.Errorf("%s: %d polls in the queue", sub, n)
			}
		}
	}
	end := time.Now()
	for _, stop := range stops {
		stop() // the polls in flight finish and are recorded
	}
	var sent, refused int
	for _, r := range e.srv.Requests() {
		if r.Location != e.loc || r.Time.Before(start) || r.Time.After(end) {
			continue
		}
		if r.Status == 429 {
			refused++
		} else {
			sent++
		}
	}
	budget := float64(run/(10*time.Second)) * 100
	t.Logf("%d requests in %s (%.0f %% of the budget), %d answered 429, at most %d polls queued", sent, run, 100*float64(sent)/budget, refused, maxQueued)
	if refused > 0 {
		t.Errorf("%d requests answered 429", refused)
	}
	if float64(sent) < 0.9*budget {
		t.Errorf("%d requests used of a budget of %.0f: under 90 %%", sent, budget)
	}
	// A poll starts on its stretched schedule up to one scheduler tick
	// (250 ms) late, waits up to 200 ms for a worker to look at the queue
	// (the engine's task check interval), and its request may be paced by
	// the limiter and the poll's own work take a moment on a loaded box.
	const slack = 250*time.Millisecond + 200*time.Millisecond + time.Second
	var worst time.Duration
	var stretch float64
	for _, sub := range e.subs {
		ps, f := polls(t, engines[0].History, sub, start)
		stretch = f
		limit := time.Duration(float64(every) * f)
		if f <= 1 {
			t.Fatalf("%s: no stretch recorded", sub)
		}
		// A subscription is polled when its request is sent, at the end
		// of its poll (after any wait in the limiter).
		at := start
		for _, p := range append(ps, history.Poll{Time: end}) {
			gap := p.Time.Add(p.Took).Sub(at)
			worst = max(worst, gap)
			if gap > limit+slack {
				t.Errorf("%s: %s without a poll (from %s), interval × stretch is %s", sub, gap.Round(time.Millisecond),
					at.Sub(start).Round(time.Millisecond), limit)
			}
			at = p.Time.Add(p.Took)
		}
	}
	t.Logf("stretch %.2f× (%s), longest gap between polls of a subscription %s", stretch, time.Duration(float64(every)*stretch), worst.Round(time.Millisecond))
	shown, err := ratelimit.Stretches(context.Background(), e.rdb, e.prefix)
	if err != nil || len(shown) != 1 || shown[0].Resource != e.loc || shown[0].Factor < stretch-0.05 {
		t.Errorf("stretches shown: %+v %v", shown, err)
	} else {
		t.Logf("shown: %s %s %.2f×: %s", shown[0].App, shown[0].Resource, shown[0].Factor, shown[0].Reason)
	}
}
