package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/scheduler"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// subMap is a fixed set of subscriptions.
type subMap map[string]*engine.Subscription

func (m subMap) Get(id string) (*engine.Subscription, bool) { s, ok := m[id]; return s, ok }

// records keeps poll records.
type records struct {
	mu  sync.Mutex
	got []history.Poll
}

func (r *records) AddPoll(_ context.Context, _ string, rec history.Poll) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return nil
}

type pollEnv struct {
	t       testing.TB
	cat     *catalog.Catalog
	srv     *sim.Server
	loc     string
	tok     sim.Token
	rdb     *redis.Client
	client  *asynq.Client
	insp    *asynq.Inspector
	queue   string
	poller  *engine.Poller
	subs    subMap
	recipes map[string]*catalog.Recipe
	pauses  *engine.Pauses
	records *records
	slot    int64
}

func newPollEnv(t testing.TB) *pollEnv {
	t.Helper()
	rdb, prefix := testRedis(t)
	queue := prefix + "chain"
	cat := testCatalog(t)
	var tick atomic.Int64
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	loc := "locPOLLTEST000000000"
	srv, ts, tok, conns := simConn(t, cat, loc, sim.Config{Burst: -1, Daily: -1,
		Now: func() time.Time { return start.Add(time.Duration(tick.Add(1)) * time.Second) }})
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ts.URL, Attempts: 1})
	rs, err := catalog.LoadRecipes(cat, "testdata/pollrecipes")
	if err != nil {
		t.Fatal(err)
	}
	e := &pollEnv{t: t, cat: cat, srv: srv, loc: loc, tok: tok, rdb: rdb, queue: queue,
		client: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb),
		subs: subMap{}, recipes: map[string]*catalog.Recipe{}, pauses: engine.NewPauses(rdb, prefix, nil), records: &records{}}
	for _, r := range rs {
		e.recipes[r.Name] = r
		s, err := engine.NewSubscription(cat, r)
		if err != nil {
			t.Fatal(err)
		}
		e.subs[s.ID] = s
	}
	e.poller = &engine.Poller{Subs: e.subs, Caller: tr, Dedup: dedup.New(rdb, dedup.Options{Prefix: prefix}),
		Queue: e.client, ChainQueue: queue, Recorder: e.records, Pauser: e.pauses}
	return e
}

func (e *pollEnv) sub(recipe string) *engine.Subscription {
	return e.subs[engine.SubscriptionID(recipe, "acme")]
}

func (e *pollEnv) addContacts(n int) []string {
	var ids []string
	for i := 0; i < n; i++ {
		c := e.srv.CreateContact(e.loc, map[string]any{"email": fmt.Sprintf("c%d-%d@example.com", time.Now().UnixNano(), i)})
		ids = append(ids, c["id"].(string))
	}
	return ids
}

// poll runs one poll of recipe and returns its record.
func (e *pollEnv) poll(recipe string) *history.Poll {
	e.t.Helper()
	e.slot++
	rec, err := e.poller.Poll(context.Background(), e.sub(recipe).ID, e.slot)
	if err != nil {
		e.t.Fatalf("poll %s: %v", recipe, err)
	}
	return rec
}

// chains returns the chain payloads waiting in the queue, in queue order.
func (e *pollEnv) chains() []engine.ChainPayload {
	e.t.Helper()
	tasks, err := e.insp.ListPendingTasks(e.queue, asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		e.t.Fatal(err)
	}
	out := make([]engine.ChainPayload, 0, len(tasks))
	for _, ti := range tasks {
		var p engine.ChainPayload
		if err := json.Unmarshal(ti.Payload, &p); err != nil {
			e.t.Fatal(err)
		}
		if ti.ID != engine.ChainTaskID(p.Sub, p.ItemKey) || ti.Type != engine.TypeChain {
			e.t.Fatalf("task %s type %s for %s", ti.ID, ti.Type, p.ItemKey)
		}
		out = append(out, p)
	}
	return out
}

func itemIDs(ps []engine.ChainPayload) []string {
	var out []string
	for _, p := range ps {
		var m map[string]any
		json.Unmarshal(p.Item, &m)
		id, _ := m["id"].(string)
		out = append(out, id)
	}
	return out
}

// TestFirstPollSeeds: 50 existing contacts fire nothing; 7 new ones fire
// exactly 7 chains, oldest first; a re-read fires nothing.
func TestFirstPollSeeds(t *testing.T) {
	e := newPollEnv(t)
	e.addContacts(50)
	rec := e.poll("new-contacts")
	if !rec.Seeded || rec.New != 0 || rec.Read != 50 || len(e.chains()) != 0 {
		t.Fatalf("seed poll: %+v, %d chains", rec, len(e.chains()))
	}
	ids := e.addContacts(7)
	rec = e.poll("new-contacts")
	if rec.Seeded || rec.New != 7 || rec.Enqueued != 7 || rec.Requests != 1 {
		t.Fatalf("second poll: %+v", rec)
	}
	got := e.chains()
	if strings.Join(itemIDs(got), ",") != strings.Join(ids, ",") {
		t.Fatalf("chains %v, want %v", itemIDs(got), ids)
	}
	for _, p := range got {
		if p.Recipe != "new-contacts" || p.Sub != e.sub("new-contacts").ID || p.Time.IsZero() {
			t.Fatalf("payload %+v", p)
		}
	}
	if rec = e.poll("new-contacts"); rec.New != 0 || len(e.chains()) != 7 || rec.Capped {
		t.Fatalf("re-read: %+v", rec)
	}
	if len(e.records.got) != 3 {
		t.Fatalf("%d poll records", len(e.records.got))
	}
}

// TestBackfill: backfill: 3 fires the newest three existing items, oldest
// first.
func TestBackfill(t *testing.T) {
	e := newPollEnv(t)
	ids := e.addContacts(10)
	rec := e.poll("backfill-contacts")
	if !rec.Seeded || rec.New != 3 {
		t.Fatalf("%+v", rec)
	}
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids[7:], ",") {
		t.Fatalf("backfill %s", got)
	}
}

// failingQueue fails every enqueue after the first n.
type failingQueue struct {
	engine.ChainEnqueuer
	n atomic.Int64
}

func (f *failingQueue) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if f.n.Add(-1) < 0 {
		return nil, errors.New("connection reset")
	}
	return f.ChainEnqueuer.EnqueueContext(ctx, t, opts...)
}

// TestCrashBeforeCommit: a poll that dies after enqueueing 3 of 7 chains
// marks nothing; its retry enqueues the other 4 and meets the TaskIDs of
// the first 3.
func TestCrashBeforeCommit(t *testing.T) {
	e := newPollEnv(t)
	e.addContacts(5)
	e.poll("new-contacts")
	ids := e.addContacts(7)
	fq := &failingQueue{ChainEnqueuer: e.client}
	fq.n.Store(3)
	e.poller.Queue = fq
	if _, err := e.poller.Poll(context.Background(), e.sub("new-contacts").ID, 99); err == nil {
		t.Fatal("no error")
	}
	if n := len(e.chains()); n != 3 {
		t.Fatalf("%d chains after the failure", n)
	}
	e.poller.Queue = e.client
	rec := e.poll("new-contacts")
	if rec.New != 7 || rec.Duplicates != 3 || rec.Enqueued != 4 {
		t.Fatalf("retry: %+v", rec)
	}
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids, ",") {
		t.Fatalf("chains %s", got)
	}
}

// TestUpdatedStrategy fires on an update, not on unchanged re-reads.
func TestUpdatedStrategy(t *testing.T) {
	e := newPollEnv(t)
	ids := e.addContacts(20)
	if rec := e.poll("updated-contacts"); !rec.Seeded || rec.New != 0 {
		t.Fatalf("seed %+v", rec)
	}
	if rec := e.poll("updated-contacts"); rec.New != 0 {
		t.Fatalf("re-read %+v", rec)
	}
	e.srv.UpdateContact(e.loc, ids[3], map[string]any{"firstName": "Changed"})
	if rec := e.poll("updated-contacts"); rec.New != 1 {
		t.Fatalf("after one update %+v", rec)
	}
	if rec := e.poll("updated-contacts"); rec.New != 0 {
		t.Fatalf("re-read after update %+v", rec)
	}
	e.srv.UpdateContact(e.loc, ids[3], map[string]any{"firstName": "Again"})
	e.srv.UpdateContact(e.loc, ids[10], map[string]any{"firstName": "Other"})
	if rec := e.poll("updated-contacts"); rec.New != 2 {
		t.Fatalf("after two updates %+v", rec)
	}
	got := itemIDs(e.chains())
	if strings.Join(got, ",") != strings.Join([]string{ids[3], ids[3], ids[10]}, ",") {
		t.Fatalf("chains %v", got)
	}
}

// TestCursorStrategy asks the API only for items after the watermark: the
// simulator's request log shows the range filter and the poll reads only
// the new items plus the one at the boundary time (read again on purpose,
// 1 ms of overlap, and dropped by its key).
func TestCursorStrategy(t *testing.T) {
	e := newPollEnv(t)
	e.addContacts(30)
	if rec := e.poll("cursor-contacts"); !rec.Seeded || rec.Read != 30 {
		t.Fatalf("seed %+v", rec)
	}
	first := e.srv.Requests()
	if body := string(first[len(first)-1].Body); strings.Contains(body, "range") {
		t.Fatalf("first poll filtered: %s", body)
	}
	e.srv.ResetLogs()
	ids := e.addContacts(4)
	rec := e.poll("cursor-contacts")
	if rec.New != 4 || rec.Read != 5 {
		t.Fatalf("%+v", rec)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 || reqs[0].Op != "ghl.contacts.search" {
		t.Fatalf("requests %+v", reqs)
	}
	var body struct {
		Filters []struct {
			Field, Operator string
			Value           map[string]string
		}
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Filters) != 1 || body.Filters[0].Field != "dateAdded" || body.Filters[0].Operator != "range" || body.Filters[0].Value["gt"] == "" {
		t.Fatalf("request body %s", reqs[0].Body)
	}
	t.Logf("cursor poll asked: %s", reqs[0].Body)
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids, ",") {
		t.Fatalf("chains %s", got)
	}
	e.srv.ResetLogs()
	if rec := e.poll("cursor-contacts"); rec.New != 0 || rec.Read != 1 {
		// The boundary item is read again (overlap) and dropped by its key.
		t.Fatalf("re-poll %+v", rec)
	}
}

// TestChangedStrategy fires once per change of a one-object trigger.
func TestChangedStrategy(t *testing.T) {
	e := newPollEnv(t)
	id := e.addContacts(1)[0]
	v, err := catalog.CompileValue("contactId", id)
	if err != nil {
		t.Fatal(err)
	}
	e.recipes["watch-contact"].Trigger.Params["contactId"] = v
	want := 0
	for step, change := range []bool{false, false, true, false, false, true, true, false} {
		if change {
			e.srv.UpdateContact(e.loc, id, map[string]any{"firstName": fmt.Sprint("v", step)})
			want++
		}
		rec := e.poll("watch-contact")
		if (step == 0) != rec.Seeded || (change && rec.New != 1) || (!change && rec.New != 0) {
			t.Fatalf("step %d change %v: %+v", step, change, rec)
		}
	}
	if n := len(e.chains()); n != want {
		t.Fatalf("%d chains, want %d", n, want)
	}
}

// TestAuthFailurePauses: a revoked token pauses the connection and the
// poll is not retried.
func TestAuthFailurePauses(t *testing.T) {
	e := newPollEnv(t)
	e.addContacts(2)
	e.srv.RevokeToken(e.tok.AccessToken)
	_, err := e.poller.Poll(context.Background(), e.sub("new-contacts").ID, 1)
	if err == nil || !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, transport.ErrUnauthorized) {
		t.Fatalf("err %v", err)
	}
	if reason, ok := e.pauses.PausedReason("acme"); !ok || !strings.Contains(reason, "unauthorized") {
		t.Fatalf("pauses %v", e.pauses.Paused())
	}
	if r := e.records.got[0]; r.Error == "" {
		t.Fatalf("record %+v", r)
	}
}

// TestPollEnqueuer: one poll task per subscription: while it waits or
// runs, the next slots are refused as in flight; a poll that failed for
// good (left archived) or whose worker was killed gives its place to the
// next slot.
func TestPollEnqueuer(t *testing.T) {
	e := newPollEnv(t)
	ctx := context.Background()
	pe := &engine.PollEnqueuer{Queue: e.client, Inspector: e.insp, PollQueue: e.queue}
	if err := pe.EnqueuePoll(ctx, "s1", 42, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for slot := int64(42); slot < 45; slot++ {
		if err := pe.EnqueuePoll(ctx, "s1", slot, time.Time{}); !errors.Is(err, scheduler.ErrInFlight) {
			t.Fatalf("slot %d while the poll waits: %v", slot, err)
		}
	}
	tasks, err := e.insp.ListPendingTasks(e.queue)
	if err != nil || len(tasks) != 1 || tasks[0].ID != engine.PollTaskID("s1") || tasks[0].Type != engine.TypePoll ||
		tasks[0].MaxRetry != 3 {
		t.Fatalf("%v %v", tasks, err)
	}
	if err := e.insp.ArchiveTask(e.queue, engine.PollTaskID("s1")); err != nil {
		t.Fatal(err)
	}
	if err := pe.EnqueuePoll(ctx, "s1", 45, time.Time{}); err != nil {
		t.Fatalf("after the poll was archived: %v", err)
	}
	tasks, err = e.insp.ListPendingTasks(e.queue)
	if err != nil || len(tasks) != 1 || !strings.Contains(string(tasks[0].Payload), `"slot":45`) {
		t.Fatalf("pending after the archived poll: %v %v", tasks, err)
	}
	// The poll runs in a worker: while its lease is extended it holds the
	// subscription; once the worker is killed and the lease lapses, the
	// next slot takes its place.
	pe.Redis = e.rdb
	base, id := "asynq:{"+e.queue+"}:", engine.PollTaskID("s1")
	run := func(leaseLeft time.Duration) {
		e.rdb.LRem(ctx, base+"pending", 0, id)
		e.rdb.LRem(ctx, base+"active", 0, id)
		e.rdb.RPush(ctx, base+"active", id)
		e.rdb.HSet(ctx, base+"t:"+id, "state", "active")
		e.rdb.ZAdd(ctx, base+"lease", redis.Z{Score: float64(time.Now().Add(leaseLeft).Unix()), Member: id})
	}
	run(28 * time.Second)
	if err := pe.EnqueuePoll(ctx, "s1", 46, time.Time{}); !errors.Is(err, scheduler.ErrInFlight) {
		t.Fatalf("slot 46 while the poll runs: %v", err)
	}
	run(5 * time.Second)
	if err := pe.EnqueuePoll(ctx, "s1", 47, time.Time{}); err != nil {
		t.Fatalf("slot 47 after the worker was killed: %v", err)
	}
	tasks, err = e.insp.ListPendingTasks(e.queue)
	if err != nil || len(tasks) != 1 || !strings.Contains(string(tasks[0].Payload), `"slot":47`) {
		t.Fatalf("pending after the abandoned poll: %v %v", tasks, err)
	}
	if n, _ := e.rdb.LLen(ctx, base+"active").Result(); n != 0 {
		t.Fatalf("%d tasks still active", n)
	}
}

// TestOldestFirstSeedWalk: a list read oldest first (the deprecated contact
// list, cursor paging, since = startAfter) is walked to its end on the
// first poll, past the usual page cap, so the next poll asks only for what
// came after and fires just the new items.
func TestOldestFirstSeedWalk(t *testing.T) {
	e := newPollEnv(t)
	e.poller.PageLimit = 20
	e.addContacts(250)
	rec := e.poll("list-contacts")
	if !rec.Seeded || rec.New != 0 || rec.Read != 250 || rec.Requests != 13 {
		t.Fatalf("seed %+v", rec)
	}
	ids := e.addContacts(3)
	rec = e.poll("list-contacts")
	if rec.New != 3 || rec.Requests != 1 {
		t.Fatalf("%+v", rec)
	}
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids, ",") {
		t.Fatalf("chains %s", got)
	}
}

// TestOldestFirstBackward: the contact search in its default order
// (oldest first) is walked back from its last page, so a large list still
// fires its new items without reading every page.
func TestOldestFirstBackward(t *testing.T) {
	e := newPollEnv(t)
	e.poller.PageLimit = 20
	e.addContacts(250)
	rec := e.poll("asc-contacts")
	if !rec.Seeded || rec.New != 0 || rec.Requests != 2 {
		t.Fatalf("seed %+v", rec)
	}
	ids := e.addContacts(30)
	rec = e.poll("asc-contacts")
	if rec.New != 30 || rec.Requests != 3 {
		t.Fatalf("%+v", rec)
	}
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids, ",") {
		t.Fatalf("chains %s", got)
	}
	if rec = e.poll("asc-contacts"); rec.New != 0 || rec.Requests != 2 {
		t.Fatalf("re-read %+v", rec)
	}
}

// TestBoundedThroughPolls: polls of a 100-item page with 5 new contacts
// each keep the subscription's dedup keys under 4 KB. 300 polls here, end
// to end through the simulator; engine/dedup's TestBounded runs the full
// 1,000 against the store.
func TestBoundedThroughPolls(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newPollEnv(t)
	e.addContacts(100)
	e.poll("new-contacts")
	fired := 0
	const polls = 300
	for i := 0; i < polls; i++ {
		e.addContacts(5)
		rec := e.poll("new-contacts")
		if rec.New != 5 || rec.Requests != 1 || rec.Read != 100 {
			t.Fatalf("poll %d: %+v", i, rec)
		}
		fired += rec.Enqueued
	}
	mem, err := e.poller.Dedup.MemoryUsage(context.Background(), e.sub("new-contacts").ID)
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("%d polls of a 100-item page, 5 new each: %d chains enqueued, dedup state %d bytes (MEMORY USAGE over %v)",
		polls, fired, mem, e.poller.Dedup.Keys(e.sub("new-contacts").ID))
	t.Log(msg)
	fmt.Println(msg)
	if fired != polls*5 || mem >= 4096 {
		t.Fatalf("fired %d, %d bytes", fired, mem)
	}
}

// BenchmarkPoll: one poll of a 100-item page from the simulator over HTTP
// (through the transport) with 5 new items: state, decide, 5 chain
// enqueues, commit.
func BenchmarkPoll(b *testing.B) {
	e := newPollEnv(b)
	e.addContacts(100)
	e.poll("new-contacts")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e.addContacts(5)
		b.StartTimer()
		if rec := e.poll("new-contacts"); rec.New != 5 {
			b.Fatalf("%+v", rec)
		}
	}
}

// TestScheduledPolls runs the polling half end to end: the scheduler claims
// due subscriptions and enqueues poll tasks, an asynq server runs them
// through Poller.ProcessTask, and chain tasks appear for new contacts only.
func TestScheduledPolls(t *testing.T) {
	e := newPollEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pollQueue := strings.TrimSuffix(e.queue, "chain") + "poll"
	t.Cleanup(func() { e.rdb.SRem(context.Background(), "asynq:queues", pollQueue) })
	sub := e.sub("new-contacts")
	every := time.Minute
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	sched := scheduler.New(e.rdb, &engine.PollEnqueuer{Queue: e.client, PollQueue: pollQueue},
		scheduler.Options{Prefix: strings.TrimSuffix(e.queue, "chain"), Now: func() time.Time { return start }})
	if err := sched.Sync(ctx, []scheduler.Entry{{ID: sub.ID, Every: every}}); err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: 2, Queues: map[string]int{pollQueue: 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.Handle(engine.TypePoll, e.poller)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	e.addContacts(20)
	var ids []string
	for slot := 1; slot <= 3; slot++ {
		at := scheduler.NextDue(sub.ID, every, start.Add(time.Duration(slot-1)*every))
		before := len(e.records.got)
		if n, err := sched.Tick(ctx, at); err != nil || n != 1 {
			t.Fatalf("slot %d: tick %d %v", slot, n, err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			e.records.mu.Lock()
			done := len(e.records.got) > before
			e.records.mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot %d: the poll did not run", slot)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The poll records its history just before its task ends; the next
		// slot would meet it still running (one poll in flight) and skip.
		for {
			q, err := e.insp.GetQueueInfo(pollQueue)
			if err == nil && q.Active == 0 && q.Pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot %d: the poll task did not finish: %+v %v", slot, q, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if slot < 3 {
			ids = append(ids, e.addContacts(2)...)
		}
	}
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids, ",") {
		t.Fatalf("chains %s, want %v", got, ids)
	}
	e.records.mu.Lock()
	defer e.records.mu.Unlock()
	if r := e.records.got; !r[0].Seeded || r[1].New != 2 || r[2].New != 2 {
		t.Fatalf("records %+v", r)
	}
}

// TestPageCap: a burst larger than the page cap fires the newest items the
// cap allows and the record says the poll was capped.
func TestPageCap(t *testing.T) {
	e := newPollEnv(t)
	e.poller.PageLimit = 10
	e.poller.MaxPages = 2
	e.addContacts(5)
	e.poll("new-contacts")
	ids := e.addContacts(30)
	rec := e.poll("new-contacts")
	if rec.New != 20 || !rec.Capped || rec.Requests != 2 {
		t.Fatalf("%+v", rec)
	}
	if got := strings.Join(itemIDs(e.chains()), ","); got != strings.Join(ids[10:], ",") {
		t.Fatalf("chains %s", got)
	}
	// The next poll reads on from where the capped one stopped: the 10
	// older items fire, before the 3 that arrived since at the top.
	more := e.addContacts(3)
	rec = e.poll("new-contacts")
	want := append(append(append([]string{}, ids[10:]...), ids[:10]...), more...)
	if got := strings.Join(itemIDs(e.chains()), ","); rec.Enqueued != 13 || got != strings.Join(want, ",") {
		t.Fatalf("after the cap: %+v\nchains %s\nwant   %s", rec, got, strings.Join(want, ","))
	}
	// Done: nothing more fires, and the backlog is gone.
	if rec := e.poll("new-contacts"); rec.New != 0 {
		t.Fatalf("a third poll fired %d", rec.New)
	}
	if st, err := e.poller.Dedup.State(context.Background(), e.sub("new-contacts").ID); err != nil || st.Backlog != nil {
		t.Fatalf("backlog left: %+v %v", st.Backlog, err)
	}
}

// TestPageCapCrash: a capped poll that dies while fanning out records
// neither its items nor its backlog; its retry fires what is left of the
// newest pages and keeps the backlog, and the next poll fires the rest.
func TestPageCapCrash(t *testing.T) {
	e := newPollEnv(t)
	e.poller.PageLimit = 10
	e.poller.MaxPages = 2
	e.addContacts(5)
	e.poll("new-contacts")
	ids := e.addContacts(30)
	fq := &failingQueue{ChainEnqueuer: e.client}
	fq.n.Store(7)
	e.poller.Queue = fq
	if _, err := e.poller.Poll(context.Background(), e.sub("new-contacts").ID, 99); err == nil {
		t.Fatal("no error")
	}
	if st, _ := e.poller.Dedup.State(context.Background(), e.sub("new-contacts").ID); st.Backlog != nil {
		t.Fatalf("a failed poll saved a backlog: %+v", st.Backlog)
	}
	e.poller.Queue = e.client
	if rec := e.poll("new-contacts"); rec.Enqueued != 13 || rec.Duplicates != 7 || !rec.Capped {
		t.Fatalf("retry: %+v", rec)
	}
	if rec := e.poll("new-contacts"); rec.Enqueued != 10 {
		t.Fatalf("after the retry: %+v", rec)
	}
	got := map[string]int{}
	for _, id := range itemIDs(e.chains()) {
		got[id]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("item %s fired %d times", id, got[id])
		}
	}
}

// TestPageCapBacklogAcrossPolls: a burst far beyond the cap is read over
// several polls, every item fired exactly once, while new items keep
// arriving at the top.
func TestPageCapBacklogAcrossPolls(t *testing.T) {
	e := newPollEnv(t)
	e.poller.PageLimit = 10
	e.poller.MaxPages = 2
	e.addContacts(5)
	e.poll("new-contacts")
	want := map[string]bool{}
	for _, id := range e.addContacts(95) {
		want[id] = true
	}
	for i := 0; i < 8; i++ {
		e.poll("new-contacts")
		for _, id := range e.addContacts(2) {
			want[id] = true
		}
	}
	for i := 0; i < 3; i++ {
		e.poll("new-contacts")
	}
	got := map[string]int{}
	for _, id := range itemIDs(e.chains()) {
		got[id]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("item %s fired %d times", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d items fired, want %d", len(got), len(want))
	}
}
