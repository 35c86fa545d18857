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
	return e
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

// requests counts the requests the location received between start and
// end: sent (answered), refused (429), and answered with no request left
// in the window (X-RateLimit-Remaining 0, which makes the engines pause).
func (e *loadEnv) requests(start, end time.Time) (sent, refused, spent int) {
	for _, r := range e.srv.Requests() {
		if r.Location != e.loc || r.Time.Before(start) || r.Time.After(end) {
			continue
		}
		if r.Status == 429 {
			refused++
		} else {
			sent++
		}
		if r.Remaining == 0 {
			spent++
		}
	}
	return sent, refused, spent
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
	sent, refused, spent := e.requests(start, end)
	budget := float64(run/(10*time.Second)) * 100
	t.Logf("%d requests in %s (%.0f %% of the budget), %d answered 429, %d with the window spent, at most %d polls queued",
		sent, run, 100*float64(sent)/budget, refused, spent, maxQueued)
	if refused > 0 {
		t.Errorf("%d requests answered 429", refused)
	}
	// The engines' own requests leave a request or two of every window:
	// a window seen spent pauses them all, and the polls queue up.
	if spent > 0 {
		t.Errorf("%d requests answered with no request left in the window", spent)
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

// TestSaturation: 40 subscriptions every 500 ms against two workers and an
// API answering in 50 ms ask for more polls than the engine can run. The
// poll queue stays bounded (one poll per subscription at most), the slots
// that find their subscription's poll still waiting are skipped, counted
// and recorded, a WARN says the engine is saturated (once per window), and
// new items still fire exactly once.
func TestSaturation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 15 s: run without -short (make test)")
	}
	const recipes, every, run = 40, 500 * time.Millisecond, 15 * time.Second
	e := newLoadEnv(t, recipes, sim.Config{Burst: -1, Daily: -1, Faults: sim.Faults{Latency: 50 * time.Millisecond}})
	metrics := engine.NewMetrics()
	eng, stop := e.start(engine.Config{Every: every, PollConcurrency: 1, ChainConcurrency: 1, TickEvery: 100 * time.Millisecond,
		PlanEvery: 250 * time.Millisecond, SaturationEvery: 3 * time.Second, Metrics: metrics}, false)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	start := time.Now()
	var contacts []string
	maxQueued := 0
	for time.Since(start) < run {
		time.Sleep(200 * time.Millisecond)
		if len(contacts) < 3 && time.Since(start) > time.Duration(2+2*len(contacts))*time.Second {
			contacts = append(contacts, e.srv.CreateContact(e.loc, map[string]any{"firstName": "New"})["id"].(string))
		}
		by, total := e.queued()
		maxQueued = max(maxQueued, total)
		if total > recipes {
			t.Fatalf("%d polls queued for %d subscriptions", total, recipes)
		}
		for sub, n := range by {
			if n > 1 {
				t.Fatalf("%s: %d polls queued", sub, n)
			}
		}
	}
	// Every new contact is tagged by every recipe, once.
	deadline := time.Now().Add(60 * time.Second)
	for len(e.tagged(contacts)) < len(contacts)*recipes && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a second firing would come now
	stop()
	stopped = true
	got := e.tagged(contacts)
	if len(got) != len(contacts)*recipes {
		t.Errorf("%d of %d (contact, recipe) pairs fired", len(got), len(contacts)*recipes)
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s fired %d times", k, n)
		}
	}
	skipped := counterValue(t, metrics, "ghlflow_poll_slots_total", "skipped")
	served := counterValue(t, metrics, "ghlflow_polls_total", "")
	if skipped == 0 {
		t.Error("no skipped slot counted")
	}
	recorded, worst := skipsAndLag(t, eng.History, e.subs, start)
	if recorded == 0 {
		t.Error(`no "previous poll still running" in the poll history`)
	}
	warns := e.logs.lines("engine saturated")
	if len(warns) == 0 || len(warns) > int(run/(3*time.Second))+2 {
		t.Errorf("%d saturation warnings in %s with a 3 s window", len(warns), time.Since(start).Round(time.Second))
	} else if w := warns[0]; !strings.Contains(w, "demanded_per_s=") || !strings.Contains(w, "served_per_s=") || !strings.Contains(w, "skipped=") {
		t.Errorf("warning without the figures: %s", w)
	}
	// The lag is bounded: a subscription waits at most for the polls of
	// the others queued ahead of it, not for a backlog of its own.
	if worst > every+time.Duration(recipes)*150*time.Millisecond {
		t.Errorf("a subscription went %s without a poll", worst)
	}
	t.Logf("%.0f polls served, %.0f slots skipped (%d recorded), at most %d polls queued, longest wait between polls of a subscription %s",
		served, skipped, recorded, maxQueued, worst.Round(time.Millisecond))
	if len(warns) > 0 {
		t.Logf("warning: %s", warns[0])
	}
}

// tagged counts the tags.add writes on contacts by contact and body (the
// recipe's tag).
func (e *loadEnv) tagged(contacts []string) map[string]int {
	out := map[string]int{}
	for _, w := range e.srv.Writes("ghl.contacts.tags.add") {
		for _, c := range contacts {
			if strings.Contains(w.Path, c) {
				out[c+" "+string(w.Body)]++
			}
		}
	}
	return out
}

// skipsAndLag counts the skipped slots the poll history of subs recorded,
// and finds the longest time from start on a subscription waited between
// polls.
func skipsAndLag(t *testing.T, h *history.Store, subs []string, start time.Time) (recorded int, worst time.Duration) {
	t.Helper()
	for _, sub := range subs {
		all, err := h.Polls(context.Background(), sub, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range all {
			if p.Skipped == engine.SkippedInFlight {
				recorded++
			}
		}
		ps, _ := polls(t, h, sub, start)
		at := start
		for _, p := range ps {
			worst = max(worst, p.Time.Sub(at))
			at = p.Time
		}
	}
	return recorded, worst
}

// counterValue reads a counter of the engine's metrics (with label value
// label, if not "").
func counterValue(t *testing.T, m *engine.Metrics, name, label string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			if label == "" || (len(mt.GetLabel()) > 0 && mt.GetLabel()[0].GetValue() == label) {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestRestartAfterDowntime: the engine stopped for ten intervals polls each
// subscription once on its return, not once per missed slot, and those
// polls spread over the interval instead of all starting together.
func TestRestartAfterDowntime(t *testing.T) {
	if testing.Short() {
		t.Skip("stays down for ten intervals: run without -short (make test)")
	}
	const recipes, every = 20, time.Second
	e := newLoadEnv(t, recipes, sim.Config{Burst: -1, Daily: -1})
	cfg := engine.Config{Every: every, PollConcurrency: 4, ChainConcurrency: 1, TickEvery: 100 * time.Millisecond}
	_, stop := e.start(cfg, false)
	time.Sleep(2 * every)
	stop()
	time.Sleep(10 * every)
	back := time.Now()
	eng, stop := e.start(cfg, false)
	time.Sleep(every + every/2)
	stop()
	var first []time.Time
	for _, sub := range e.subs {
		// One poll on return, then the next an interval later: no
		// catch-up of the missed slots.
		ps, _ := polls(t, eng.History, sub, back)
		if len(ps) == 0 || len(ps) > 2 {
			t.Errorf("%s polled %d times in the %s after its return", sub, len(ps), every+every/2)
			continue
		}
		if late := ps[0].Time.Sub(back); late > every+500*time.Millisecond {
			t.Errorf("%s first polled %s after its return", sub, late)
		}
		if len(ps) == 2 && ps[1].Time.Sub(ps[0].Time) < every-300*time.Millisecond {
			t.Errorf("%s polled twice within %s after its return", sub, ps[1].Time.Sub(ps[0].Time))
		}
		first = append(first, ps[0].Time)
	}
	slices.SortFunc(first, func(a, b time.Time) int { return a.Compare(b) })
	if len(first) == recipes {
		spread := first[len(first)-1].Sub(first[0])
		if spread < every/2 {
			t.Errorf("the polls after the outage started within %s of each other: no spread over the %s interval", spread, every)
		}
		t.Logf("after ten intervals down: one poll each, spread over %s", spread.Round(time.Millisecond))
	}
}

// TestStretchShrinksWhenDemandDrops: 40 recipes on one location polled
// every 2 s ask for about twice its burst budget, so the plan stretches
// their polls and `connect list` shows the stretch; when most recipes are
// removed the demand fits again, and within a few planning rounds the
// remaining subscriptions record their polls back at their interval and
// no stretch is shown.
func TestStretchShrinksWhenDemandDrops(t *testing.T) {
	overlapInShort(t)
	const recipes, kept = 40, 4
	e := newLoadEnv(t, recipes, sim.Config{})
	eng, stop := e.start(engine.Config{Every: 2 * time.Second, PollConcurrency: 4, ChainConcurrency: 1,
		TickEvery: 100 * time.Millisecond, PlanEvery: 250 * time.Millisecond}, true)
	defer stop()
	ctx := context.Background()
	latest := func(sub string) (history.Poll, bool) {
		all, err := eng.History.Polls(ctx, sub, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range all { // newest first
			if p.Stretch != 0 {
				return p, true
			}
		}
		return history.Poll{}, false
	}
	var shown []ratelimit.Stretched
	until(t, 20*time.Second, "the polls stretched and the stretch shown", func() bool {
		var err error
		if shown, err = ratelimit.Stretches(ctx, e.rdb, e.prefix); err != nil {
			t.Fatal(err)
		}
		p, ok := latest(e.subs[0])
		return ok && p.Stretch > 1 && len(shown) == 1
	})
	if p, _ := latest(e.subs[0]); shown[0].Resource != e.loc || shown[0].Factor < 1.5 || p.Stretch < 1.5 ||
		!strings.Contains(p.StretchReason, "requests/s") {
		t.Fatalf("stretch recorded %+v, shown %+v", p, shown)
	}
	t.Logf("stretched %.2f×: %s", shown[0].Factor, shown[0].Reason)

	for i := kept; i < recipes; i++ { // newLoadEnv names recipe i r%03d
		if err := os.Remove(filepath.Join(e.dir, fmt.Sprintf("r%03d.yaml", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(eng.Registry().All()); n != kept {
		t.Fatalf("%d subscriptions after the reload, want %d", n, kept)
	}
	reloaded := time.Now()
	until(t, 10*time.Second, "the stretch back to 1 and none shown", func() bool {
		var err error
		if shown, err = ratelimit.Stretches(ctx, e.rdb, e.prefix); err != nil {
			t.Fatal(err)
		}
		for _, sub := range e.subs[:kept] {
			if p, ok := latest(sub); !ok || p.Stretch != 1 {
				return false
			}
		}
		return len(shown) == 0
	})
	t.Logf("back to 1 within %s of the reload", time.Since(reloaded).Round(time.Millisecond))
	for _, sub := range e.subs[:kept] {
		if p, _ := latest(sub); !strings.Contains(p.StretchReason, "fits the API budget again") {
			t.Errorf("%s: stretch record %+v", sub, p)
		}
	}
}
