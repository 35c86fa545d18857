package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

type chainEnv struct {
	t       *testing.T
	cat     *catalog.Catalog
	srv     *sim.Server
	loc     string
	tok     sim.Token
	rdb     *redis.Client
	chainer *engine.Chainer
	subs    subMap
	pauses  *engine.Pauses
	hist    *history.Store
}

func newChainEnv(t *testing.T) *chainEnv {
	rdb, prefix := testRedis(t)
	cat := testCatalog(t)
	loc := "locCHAINTEST00000000"
	srv, ts, tok, conns := simConn(t, cat, loc, sim.Config{Burst: -1, Daily: -1})
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ts.URL, Attempts: 1})
	e := &chainEnv{t: t, cat: cat, srv: srv, loc: loc, tok: tok, rdb: rdb, subs: subMap{}, pauses: engine.NewPauses(rdb, prefix, nil),
		hist: history.New(rdb, history.Options{Prefix: prefix})}
	e.chainer = &engine.Chainer{Subs: e.subs, Runner: &actions.Runner{Catalog: cat, Caller: tr}, Redis: rdb,
		Prefix: prefix, History: e.hist, Pauser: e.pauses}
	return e
}

// recipe puts a recipe in force as the subscription "sub1".
func (e *chainEnv) recipe(text string) {
	e.t.Helper()
	r, err := (&catalog.RecipeLoader{Catalog: e.cat}).Parse("chain.yaml", []byte(text))
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := engine.NewSubscription(e.cat, r)
	if err != nil {
		e.t.Fatal(err)
	}
	s.ID = "sub1"
	e.subs["sub1"] = s
}

func (e *chainEnv) payload(item map[string]any) engine.ChainPayload {
	b, _ := json.Marshal(item)
	return engine.ChainPayload{Sub: "sub1", Recipe: "r", ItemKey: fmt.Sprint(item["id"]), Item: b}
}

const chainRecipe = `name: chain-test
trigger: {op: ghl.contacts.search, connection: acme, every: 1m}
filter: '{{ ne (default "" .trigger.email) "" }}'
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: [one]}
  - op: ghl.contacts.notes.create
    input: {contactId: "{{ %s }}", body: "tags {{ .steps.0.tags | join \",\" }}"}
`

func TestChainResumesAfterLastCheckpoint(t *testing.T) {
	e := newChainEnv(t)
	c := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Ann", "email": "ann@example.com"})
	pl := e.payload(c)
	// Step 1 names a contact that does not exist: the run stops there, for
	// good, with step 0 checkpointed.
	e.recipe(fmt.Sprintf(chainRecipe, ".trigger.firstName"))
	res := e.chainer.Run(context.Background(), pl, "task-1")
	if res.Status != engine.ChainFailed || !errors.Is(res.Err, asynq.SkipRetry) || !errors.Is(res.Err, transport.ErrNotFound) {
		t.Fatalf("first run: %s %v", res.Status, res.Err)
	}
	// The same task again, now able to finish: step 0 is not repeated.
	e.recipe(fmt.Sprintf(chainRecipe, ".trigger.id"))
	res = e.chainer.Run(context.Background(), pl, "task-1")
	if res.Status != engine.ChainCompleted || res.Steps != 2 || res.Resumed != 1 {
		t.Fatalf("second run: %+v", res)
	}
	if n := len(e.srv.Writes("ghl.contacts.tags.add")); n != 1 {
		t.Fatalf("tags written %d times, want 1", n)
	}
	var notes []sim.Write
	for _, w := range e.srv.Writes("ghl.contacts.notes.create") {
		if w.Status/100 == 2 {
			notes = append(notes, w)
		}
	}
	if len(notes) != 1 || !json.Valid(notes[0].Body) || !strings.Contains(string(notes[0].Body), "tags one") {
		t.Fatalf("notes = %+v", notes)
	}
	runs, err := e.hist.Chains(context.Background(), "sub1", 0)
	if err != nil || len(runs) != 2 || runs[0].Status != "completed" || runs[0].Steps[0].Status != "resumed" || runs[1].Status != "failed" {
		t.Fatalf("history = %+v, %v", runs, err)
	}
}

func TestChainOutcomes(t *testing.T) {
	e := newChainEnv(t)
	e.recipe(fmt.Sprintf(chainRecipe, ".trigger.id"))
	c := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Bob", "email": "bob@example.com"})
	ctx := context.Background()

	// The filter drops an item without email: nothing is written.
	res := e.chainer.Run(ctx, e.payload(map[string]any{"id": c["id"]}), "t-filter")
	if res.Status != engine.ChainFiltered || res.Err != nil || len(e.srv.Writes("")) != 0 {
		t.Fatalf("filtered: %+v, writes %d", res, len(e.srv.Writes("")))
	}

	// Server errors are retried (no SkipRetry).
	e.srv.SetFaults(sim.Faults{Error5xx: 1})
	res = e.chainer.Run(ctx, e.payload(c), "t-5xx")
	if res.Status != engine.ChainRetry || res.Err == nil || errors.Is(res.Err, asynq.SkipRetry) {
		t.Fatalf("5xx: %+v", res)
	}
	e.srv.SetFaults(sim.Faults{})

	// A refused token pauses the connection; the chain waits for the fix:
	// asynq runs it again in about a minute without spending a retry.
	e.srv.RevokeToken(e.tok.AccessToken)
	pl := e.payload(c)
	pl.Enqueued = time.Now()
	res = e.chainer.Run(ctx, pl, "t-auth")
	var pe *engine.PausedError
	if res.Status != engine.ChainPaused || errors.Is(res.Err, asynq.SkipRetry) || !errors.As(res.Err, &pe) ||
		pe.Connection != "acme" || len(e.pauses.Paused()) != 1 {
		t.Fatalf("auth: %+v, pauses %v", res, e.pauses.Paused())
	}
	if engine.IsFailure(res.Err) {
		t.Fatal("waiting for a paused connection counts as a failure")
	}
	if d := engine.RetryDelay(0, res.Err, nil); d < engine.PauseRetry || d > 2*engine.PauseRetry {
		t.Fatalf("paused chain retried after %s", d)
	}
	// Past the hold it goes to the archive, with the reason.
	pl.Enqueued = time.Now().Add(-engine.DefaultPauseHold - time.Minute)
	res = e.chainer.Run(ctx, pl, "t-auth-old")
	if res.Status != engine.ChainPaused || !errors.Is(res.Err, asynq.SkipRetry) || !engine.IsFailure(res.Err) ||
		!strings.Contains(res.Err.Error(), "gave up after waiting 72h0m0s") {
		t.Fatalf("auth past the hold: %+v", res)
	}

	// A subscription removed since the fan-out finishes quietly.
	pl = e.payload(c)
	pl.Sub = "gone"
	if res := e.chainer.Run(ctx, pl, "t-gone"); res.Status != engine.ChainRemoved || res.Err != nil {
		t.Fatalf("removed: %+v", res)
	}
}

// TestChainOfAPausedTenantWaits: a chain queued before its tenant was
// paused (or uninstalled the app) writes nothing while the tenant is not
// active; it waits without spending its retries and completes once the
// tenant is active again.
func TestChainOfAPausedTenantWaits(t *testing.T) {
	e := newChainEnv(t)
	ctx := context.Background()
	e.recipe(fmt.Sprintf(chainRecipe, ".trigger.id"))
	c := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Ann", "email": "ann@example.com"})
	pl := e.payload(c)
	pl.Enqueued = time.Now()
	for _, status := range []string{tenant.StatusPaused, tenant.StatusUninstalled} {
		e.subs["sub1"].Tenant = &tenant.Tenant{ID: "B", Status: status}
		res := e.chainer.Run(ctx, pl, "t-tenant")
		var pe *engine.PausedError
		if res.Status != engine.ChainPaused || !errors.As(res.Err, &pe) || pe.Tenant != "B" || engine.IsFailure(res.Err) {
			t.Fatalf("%s tenant: %+v", status, res)
		}
		if d := engine.RetryDelay(0, res.Err, nil); d < engine.PauseRetry || d > 2*engine.PauseRetry {
			t.Fatalf("%s tenant: chain looked at again after %s", status, d)
		}
		if n := len(e.srv.Writes("")); n != 0 {
			t.Fatalf("%s tenant: %d writes", status, n)
		}
	}
	e.subs["sub1"].Tenant = &tenant.Tenant{ID: "B", Status: tenant.StatusActive}
	if res := e.chainer.Run(ctx, pl, "t-tenant"); res.Status != engine.ChainCompleted || res.Steps != 2 {
		t.Fatalf("resumed tenant: %+v", res)
	}
	if n := len(e.srv.Writes("ghl.contacts.notes.create")); n != 1 {
		t.Fatalf("resumed tenant: %d notes written, want 1", n)
	}
}

func TestRetryDelay(t *testing.T) {
	for n := range 30 {
		d := engine.RetryDelay(n, errors.New("x"), nil)
		if d <= 0 || d > 30*time.Minute {
			t.Fatalf("RetryDelay(%d) = %s", n, d)
		}
	}
	rl := &transport.Error{Op: "op", Status: 429, Err: &transport.RateLimitedError{RetryAfter: 7 * time.Second}}
	if d := engine.RetryDelay(1, rl, nil); d < 7*time.Second || d > 8*time.Second {
		t.Fatalf("429 delay = %s", d)
	}
	if engine.IsFailure(rl) {
		t.Fatal("a rate limit counted as a failure")
	}
}

// TestChainTaskResult: a chain run by asynq leaves its record as the
// task's result (what asynqmon shows): status, steps and the ids of what
// they wrote.
func TestChainTaskResult(t *testing.T) {
	overlapInShort(t)
	e := newChainEnv(t)
	e.recipe(fmt.Sprintf(chainRecipe, ".trigger.id"))
	c := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Cy", "email": "cy@example.com"})
	queue := e.chainer.Prefix + "chain"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := e.rdb.Keys(ctx, "asynq:{"+queue+"}*").Result()
		if len(keys) > 0 {
			e.rdb.Del(ctx, keys...)
		}
		e.rdb.SRem(ctx, "asynq:queues", queue)
	})
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{queue: 1},
		Logger: quietLogger{}})
	mux := asynq.NewServeMux()
	mux.Handle(engine.TypeChain, e.chainer)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	payload, _ := json.Marshal(e.payload(c))
	client := asynq.NewClientFromRedisClient(e.rdb)
	info, err := client.Enqueue(asynq.NewTask(engine.TypeChain, payload), asynq.Queue(queue), asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ti, err := insp.GetTaskInfo(queue, info.ID)
		if err == nil && ti.State == asynq.TaskStateCompleted {
			var rec history.Chain
			if err := json.Unmarshal(ti.Result, &rec); err != nil {
				t.Fatalf("result %q: %v", ti.Result, err)
			}
			if rec.Status != engine.ChainCompleted || len(rec.Steps) != 2 || rec.Steps[1].Status != "done" ||
				rec.Steps[1].ID == "" || rec.ItemKey != fmt.Sprint(c["id"]) {
				t.Fatalf("result %s", ti.Result)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("chain task not completed: %+v %v", ti, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quietLogger drops asynq's own logs.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}
