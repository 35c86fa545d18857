package engine_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/engine/webhook"
	"github.com/ghlflow/ghlflow/triggers"
)

// instantEnv runs an engine with an instant recipe on a simulator that
// sends its webhooks to the engine's HTTP side.
type instantEnv struct {
	t       *testing.T
	srv     *sim.Server
	loc     string
	eng     *engine.Engine
	url     string // the engine's /webhooks/ghl
	metrics *webhook.Metrics
	sub     string
	simURL  string
	token   string // the location's token at the simulator

	mu   sync.Mutex
	done map[string][]time.Time // item key → completed chain runs
}

func newInstantEnv(t *testing.T, opts ...func(*engine.Engine)) *instantEnv {
	return newInstantEnvIn(t, "testdata/instantrecipes", opts...)
}

// newInstantEnvIn runs the recipes in dir; opts set the engine up before it
// runs.
func newInstantEnvIn(t *testing.T, dir string, opts ...func(*engine.Engine)) *instantEnv {
	t.Helper()
	rdb, prefix := testRedis(t)
	cat := testCatalog(t)
	loc := "locINSTANT0000000000"
	srv, ts, tok, conns := simConn(t, cat, loc, sim.Config{Burst: -1, Daily: -1})
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	e := &instantEnv{t: t, srv: srv, loc: loc, metrics: webhook.NewMetrics(reg, cat.WebhookEvents()), simURL: ts.URL, token: tok.AccessToken,
		sub: engine.SubscriptionID("instant-contacts", "acme"), done: map[string][]time.Time{}}
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat, Connections: conns,
		BaseURL: ts.URL}), Redis: rdb, Recipes: []string{dir}, Prefix: prefix,
		Locations: engine.ConnectionLocations{Static: conns}, WebhookMetrics: e.metrics, Logger: warnLogger(),
		OnChain: func(r engine.ChainResult) {
			if r.Status == engine.ChainCompleted {
				e.mu.Lock()
				e.done[r.ItemKey] = append(e.done[r.ItemKey], time.Now())
				e.mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.eng = eng
	for _, o := range opts {
		o(eng)
	}
	keys, err := webhook.ParseKeys([]byte(srv.WebhookPublicKeyPEM()))
	if err != nil {
		t.Fatal(err)
	}
	h, closeMon := engine.Handler(rdb, asynq.RedisClientOpt{Addr: rdb.Options().Addr}, reg, engine.Mount{Pattern: engine.WebhookPath,
		Handler: &webhook.Handler{Keys: keys, Store: webhook.NewStore(rdb, prefix), Metrics: e.metrics}})
	hs := httptest.NewServer(h)
	e.url = hs.URL + engine.WebhookPath
	srv.AddWebhook(e.url)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(stopped) }()
	t.Cleanup(func() {
		cancel()
		<-stopped
		hs.Close()
		_ = closeMon()
	})
	return e
}

// seed runs the subscription's first poll, as the scheduler would.
func (e *instantEnv) poll() *history.Poll {
	e.t.Helper()
	rec, err := e.eng.Poller.Poll(context.Background(), e.sub, time.Now().UnixNano())
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func (e *instantEnv) runs(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.done[id])
	for key, runs := range e.done {
		if strings.HasSuffix(key, ":"+id) { // the cursor strategy's key
			n += len(runs)
		}
	}
	return n
}

// waitRuns waits until the chain of item id completed n times.
func (e *instantEnv) waitRuns(id string, n int, within time.Duration) {
	e.t.Helper()
	end := time.Now().Add(within)
	for e.runs(id) < n {
		if time.Now().After(end) {
			e.t.Fatalf("chain of %s ran %d times within %v, want %d", id, e.runs(id), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle waits for deliveries and chains in flight to finish.
func (e *instantEnv) settle() {
	time.Sleep(1500 * time.Millisecond)
}

// delivery returns the simulator's delivery of a contact's event.
func (e *instantEnv) delivery(typ, id string) sim.Delivery {
	e.t.Helper()
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		for _, d := range e.srv.Deliveries() {
			if d.Type == typ && bytes.Contains(d.Body, []byte(`"id":"`+id+`"`)) {
				return d
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("no %s delivery of %s", typ, id)
	return sim.Delivery{}
}

func (e *instantEnv) post(body []byte, sig string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	req.Header.Set(webhook.SignatureHeader, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *instantEnv) count(typ, result string) float64 {
	return testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(typ, result))
}

// TestInstantFiresAtOnce: a contact created on a 15-minute instant recipe
// fires its chain within a second, through the webhook alone.
func TestInstantFiresAtOnce(t *testing.T) {
	overlapInShort(t)
	e := newInstantEnv(t)
	e.srv.CreateContact(e.loc, map[string]any{"firstName": "Old"})
	e.poll()
	start := time.Now()
	c := e.srv.CreateContact(e.loc, map[string]any{"firstName": "New"})
	id := c["id"].(string)
	e.waitRuns(id, 1, time.Second)
	t.Logf("contact created → chain completed in %v", time.Since(start))
	if n := testutil.CollectAndCount(e.metrics.ChainStart); n != 1 {
		t.Errorf("chain start latency observed %d times", n)
	}
	// Both contacts' events were accepted and routed (the old one's found
	// its contact known).
	if e.count("ContactCreate", webhook.ResultRouted) != 2 || e.count("ContactCreate", webhook.ResultAccepted) != 2 {
		t.Errorf("metrics: accepted %v routed %v", e.count("ContactCreate", webhook.ResultAccepted), e.count("ContactCreate", webhook.ResultRouted))
	}
	// The poll that reads it later finds it known.
	if rec := e.poll(); rec.New != 0 {
		t.Errorf("the poll after the webhook found %d new items", rec.New)
	}
	e.settle()
	if n := e.runs(id); n != 1 {
		t.Errorf("chain ran %d times", n)
	}
}

// TestInstantBeforeFirstPoll: before any poll has seeded the subscription
// a new contact still fires; an update of an old contact does not.
func TestInstantBeforeFirstPoll(t *testing.T) {
	overlapInShort(t)
	e := newInstantEnv(t)
	c := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Early"})
	e.waitRuns(c["id"].(string), 1, time.Second)
	old := e.delivery("ContactCreate", c["id"].(string))
	var p map[string]any
	_ = json.Unmarshal(old.Body, &p)
	p["id"], p["dateAdded"], p["webhookId"], p["type"] = "oldContact0000000000", "2020-01-01T00:00:00.000Z", "w-old", "ContactUpdate"
	p["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	body, _ := json.Marshal(p)
	if st := e.post(body, e.srv.SignWebhook(body)); st != 200 {
		t.Fatalf("status %d", st)
	}
	e.settle()
	if n := e.runs("oldContact0000000000"); n != 0 {
		t.Errorf("an update of a contact from 2020 fired %d chains before the first poll", n)
	}
}

// TestInstantOnce: a dropped delivery is fired by the next poll; a replayed
// delivery, the same event delivered again under another webhookId, and a
// delivery followed or preceded by the poll that sees the same contact
// each fire once.
func TestInstantOnce(t *testing.T) {
	overlapInShort(t)
	e := newInstantEnv(t)
	e.poll()
	e.srv.SetFaults(sim.Faults{WebhookDrop: 1})
	lost := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Lost"})["id"].(string)
	kept := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Kept"})["id"].(string)
	e.waitRuns(kept, 1, time.Second)
	if d := e.delivery("ContactCreate", lost); !d.Dropped {
		t.Fatal("the first delivery was not dropped")
	}
	if rec := e.poll(); rec.New != 1 {
		t.Errorf("the poll after a lost delivery found %d new items, want 1", rec.New)
	}
	e.waitRuns(lost, 1, 2*time.Second)

	// The kept delivery replayed as is (same webhookId), and the lost one
	// arriving late, after its poll.
	keptBody := e.delivery("ContactCreate", kept).Body
	lostBody := e.delivery("ContactCreate", lost).Body
	if st := e.post(keptBody, e.srv.SignWebhook(keptBody)); st != 200 {
		t.Errorf("replay: status %d", st)
	}
	if st := e.post(lostBody, e.srv.SignWebhook(lostBody)); st != 200 {
		t.Errorf("late delivery: status %d", st)
	}
	// The same event signed and sent again under a new webhookId.
	var p map[string]any
	_ = json.Unmarshal(keptBody, &p)
	p["webhookId"] = "another-delivery-of-kept"
	again, _ := json.Marshal(p)
	if st := e.post(again, e.srv.SignWebhook(again)); st != 200 {
		t.Errorf("re-sent event: status %d", st)
	}
	e.settle()
	e.poll()
	e.settle()
	for _, id := range []string{kept, lost} {
		if n := e.runs(id); n != 1 {
			t.Errorf("chain of %s ran %d times, want 1", id, n)
		}
	}
	if got := e.count("ContactCreate", webhook.ResultDuplicate); got != 1 {
		t.Errorf("duplicates counted %v, want 1", got)
	}
}

// TestInstantLostUnderNoted: a poll does not stop at an item known only
// from its webhook: a lost delivery of an older item below it, on the
// next page, still fires. With the cursor strategy the poll asks from its
// own watermark, not from the newest item a webhook brought.
func TestInstantLostUnderNoted(t *testing.T) {
	overlapInShort(t)
	for _, dir := range []string{"testdata/instantrecipes", "testdata/instantcursor"} {
		t.Run(dir, func(t *testing.T) {
			e := newInstantEnvIn(t, dir, func(eng *engine.Engine) { eng.Poller.PageLimit = 1 })
			e.srv.CreateContact(e.loc, map[string]any{"firstName": "Old"})
			time.Sleep(5 * time.Millisecond)
			e.poll()
			e.srv.SetFaults(sim.Faults{WebhookDrop: 1})
			lost := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Lost"})["id"].(string)
			time.Sleep(5 * time.Millisecond)
			kept := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Kept"})["id"].(string)
			e.waitRuns(kept, 1, time.Second)
			if rec := e.poll(); rec.New != 1 {
				t.Errorf("the poll found %d new items, want 1 (the lost one)", rec.New)
			}
			e.waitRuns(lost, 1, 2*time.Second)
			e.settle()
			if e.runs(kept) != 1 || e.runs(lost) != 1 {
				t.Errorf("runs: kept %d, lost %d", e.runs(kept), e.runs(lost))
			}
		})
	}
}

// TestInstantRefused: a changed byte, a wrong key and a stale timestamp
// are refused and counted, and fire nothing; events of other locations and
// types are counted as unrouted.
func TestInstantRefused(t *testing.T) {
	overlapInShort(t)
	e := newInstantEnv(t)
	e.poll()
	e.srv.SetFaults(sim.Faults{WebhookDrop: 1})
	id := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Forged"})["id"].(string)
	body := e.delivery("ContactCreate", id).Body
	var p map[string]any
	_ = json.Unmarshal(body, &p)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	changed := bytes.Replace(body, []byte("Forged"), []byte("Forgee"), 1)
	p["timestamp"], p["webhookId"] = time.Now().Add(-6*time.Minute).UTC().Format(time.RFC3339Nano), "stale-one"
	stale, _ := json.Marshal(p)
	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		status int
		result string
	}{
		{"changed byte", changed, e.srv.SignWebhook(body), 401, webhook.ResultBadSignature},
		{"wrong key", body, base64.StdEncoding.EncodeToString(ed25519.Sign(other, body)), 401, webhook.ResultBadSignature},
		{"stale", stale, e.srv.SignWebhook(stale), 400, webhook.ResultStale},
	} {
		typ := "none"
		if tc.result == webhook.ResultStale {
			typ = "ContactCreate"
		}
		before := e.count(typ, tc.result)
		if st := e.post(tc.body, tc.sig); st != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, st, tc.status)
		}
		if got := e.count(typ, tc.result) - before; got != 1 {
			t.Errorf("%s: counted %v times", tc.name, got)
		}
	}
	// Signed and fresh, but for another location, or of a type no recipe
	// listens to.
	for _, change := range []map[string]any{{"locationId": "locELSEWHERE00000000", "webhookId": "w-else"},
		{"type": "ContactDelete", "webhookId": "w-delete"}} {
		var q map[string]any
		_ = json.Unmarshal(body, &q)
		for k, v := range change {
			q[k] = v
		}
		b, _ := json.Marshal(q)
		if st := e.post(b, e.srv.SignWebhook(b)); st != 200 {
			t.Errorf("%v: status %d", change, st)
		}
	}
	e.settle()
	if n := e.runs(id); n != 0 {
		t.Errorf("refused or unrouted deliveries fired %d chains", n)
	}
	if got := e.count("ContactCreate", webhook.ResultUnrouted) + e.count("ContactDelete", webhook.ResultUnrouted); got != 2 {
		t.Errorf("unrouted counted %v, want 2", got)
	}
}

// warnLogger drops the engine's logs below warnings.
func warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// TestInstantRoutedAfterTheSeed: an event accepted before the
// subscription's first poll but routed after it (its process died and the
// event was claimed again) still fires, once; an event received after the
// seed for an item the seed counted fires nothing.
func TestInstantRoutedAfterTheSeed(t *testing.T) {
	overlapInShort(t)
	e := newInstantEnv(t)
	e.srv.SetFaults(sim.Faults{WebhookDrop: 100}) // the router sees none: the test routes them
	received := time.Now()
	late := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Late"})["id"].(string)
	before := e.delivery("ContactCreate", late)
	if rec := e.poll(); !rec.Seeded || rec.New != 0 {
		t.Fatalf("the seed poll: %+v", rec)
	}
	sub, ok := e.eng.Registry().Get(e.sub)
	if !ok {
		t.Fatal("no subscription")
	}
	fire := func(body []byte, at time.Time) bool {
		t.Helper()
		it, err := triggers.EventItem(sub.Op, sub.Dedup, body)
		if err != nil {
			t.Fatal(err)
		}
		fired, err := e.eng.Poller.Fire(context.Background(), sub, it, at)
		if err != nil {
			t.Fatal(err)
		}
		return fired
	}
	if !fire(before.Body, received) {
		t.Error("an event received before the seed and routed after it did not fire")
	}
	e.waitRuns(late, 1, 5*time.Second)
	if fire(before.Body, received) {
		t.Error("the same event routed again fired again")
	}
	// An item the seed counted, whose event came after the seed.
	seen := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Seen"})["id"].(string)
	after := e.delivery("ContactCreate", seen)
	if rec := e.poll(); rec.New != 1 {
		t.Fatalf("the poll after the seed: %+v", rec)
	}
	e.waitRuns(seen, 1, 5*time.Second)
	if fire(after.Body, time.Now()) {
		t.Error("an event received after the poll that fired its item fired again")
	}
	e.settle()
	if n := e.runs(late); n != 1 {
		t.Errorf("the late event's chain ran %d times", n)
	}
	if n := e.runs(seen); n != 1 {
		t.Errorf("the polled contact's chain ran %d times", n)
	}
}
