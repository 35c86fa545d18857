package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// packLoc is the simulator location of the pack tests' tenant; its
// Referrizer account and Referral Rock program live beside it.
const packLoc = "loc-pack"

// packFixture is one tenant with GHL, Referrizer and Referral Rock
// connected, against one simulator seeded with one record of each kind.
type packFixture struct {
	t       *testing.T
	cat     *catalog.Catalog
	srv     *sim.Server
	url     string
	conns   *auth.Static
	ghl     sim.Token
	rz      sim.Token
	rr      sim.Token
	program string
	rdb     redis.UniversalClient
	prefix  string

	// log, when set before start, receives the engine's log.
	log *logBuffer

	mu      sync.Mutex
	own     map[string]int // writes the test made (method path body), not the engine
	results []engine.ChainResult
}

func newPackFixture(t *testing.T) *packFixture {
	t.Helper()
	cat := testCatalog(t)
	// The referral apps' budgets (10 requests per 10 s) would stretch polls
	// every 300 ms to seconds; these tests are about mappings and loops, so
	// this catalog copy (and the simulator built on it) allows more.
	for _, app := range []string{"referrizer", "referralrock"} {
		cat.App(app).RateLimit.Burst = 1000
	}
	srv := sim.New(cat, sim.Config{})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	srv.AddLocation(packLoc)
	srv.Seed(1)
	f := &packFixture{t: t, cat: cat, srv: srv, url: ts.URL, own: map[string]int{},
		ghl: srv.IssueToken(sim.TokenSpec{LocationID: packLoc, Private: true}),
		rz:  srv.IssueToken(sim.TokenSpec{App: "referrizer", LocationID: packLoc}),
		rr:  srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: packLoc})}
	conns, err := auth.NewStatic(
		auth.StaticEntry{ID: "ghl-pack", App: "ghl", LocationID: packLoc, Token: f.ghl.AccessToken},
		auth.StaticEntry{ID: "rz-pack", App: "referrizer", Token: f.rz.AccessToken},
		auth.StaticEntry{ID: "rr-pack", App: "referralrock", Username: f.rr.Username, Password: f.rr.Password})
	if err != nil {
		t.Fatal(err)
	}
	f.conns = conns
	f.program = gjson.GetBytes(f.call("referralrock.programs.list", nil, nil), "programs.0.id").String()
	if f.program == "" {
		t.Fatal("no seeded Referral Rock program")
	}
	f.rdb, f.prefix = testRedis(t)
	return f
}

// call performs an operation on the simulator as a user would in the app
// (not through the engine); its write is left out of the engine's writes.
func (f *packFixture) call(opID string, params map[string]string, body any) []byte {
	f.t.Helper()
	method, path, ok := f.srv.Route(opID)
	if !ok {
		f.t.Fatalf("no route for %s", opID)
	}
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	var out []byte
	for try := 0; ; try++ {
		status, body := f.send(opID, method, path, raw)
		if status == http.StatusTooManyRequests && try < 50 {
			time.Sleep(100 * time.Millisecond) // the engine's polls share the account's budget
			continue
		}
		if status/100 != 2 {
			f.t.Fatalf("%s: %d %s", opID, status, body)
		}
		out = body
		break
	}
	if method != http.MethodGet {
		f.mu.Lock()
		f.own[method+" "+strings.SplitN(path, "?", 2)[0]+" "+string(raw)]++
		f.mu.Unlock()
	}
	return out
}

// send makes one request as the user of the app the operation belongs to.
func (f *packFixture) send(opID, method, path string, raw []byte) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, bytes.NewReader(raw))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch f.cat.MustOp(opID).App {
	case "referralrock":
		req.SetBasicAuth(f.rr.Username, f.rr.Password)
	case "referrizer":
		req.Header.Set("Authorization", "Bearer "+f.rz.AccessToken)
	default:
		req.Header.Set("Authorization", "Bearer "+f.ghl.AccessToken)
		req.Header.Set("Version", "2021-07-28")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// writes returns the engine's writes (reads and the test's own calls left
// out), oldest first.
func (f *packFixture) writes() []sim.Write {
	f.mu.Lock()
	own := make(map[string]int, len(f.own))
	for k, v := range f.own {
		own[k] = v
	}
	f.mu.Unlock()
	var out []sim.Write
	for _, w := range f.srv.Writes("") {
		if !actions.IsWrite(f.cat.MustOp(w.Op)) || w.Status/100 != 2 {
			continue
		}
		if k := w.Method + " " + w.Path + " " + string(w.Body); own[k] > 0 {
			own[k]--
			continue
		}
		out = append(out, w)
	}
	return out
}

// writesOf returns the engine's writes of one operation.
func (f *packFixture) writesOf(opID string) []sim.Write {
	var out []sim.Write
	for _, w := range f.writes() {
		if w.Op == opID || slicesContains(w.Ops, opID) {
			out = append(out, w)
		}
	}
	return out
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// start stores the tenant (with the given connections) and runs an engine
// with the recipe files, polling every 300 ms; it returns once every
// subscription has seeded.
func (f *packFixture) start(tenantConns map[string]string, recipes ...string) *engine.Engine {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	err := tenant.NewStore(f.rdb, f.prefix).Put(ctx, &tenant.Tenant{ID: "pack", Name: "Pack tenant",
		Labels: map[string]string{"rr_program": f.program}, Connections: tenantConns})
	if err != nil {
		f.t.Fatal(err)
	}
	var logger *slog.Logger
	if f.log != nil {
		logger = slog.New(slog.NewTextHandler(f.log, nil))
	}
	eng, err := engine.New(engine.Config{Catalog: f.cat, Redis: f.rdb, Recipes: recipes, Prefix: f.prefix, Logger: logger,
		Caller:      transport.New(transport.Config{Catalog: f.cat, Connections: f.conns, BaseURL: f.url}),
		Connections: f.conns, Every: 300 * time.Millisecond, TickEvery: 50 * time.Millisecond, TenantRefresh: time.Second,
		OnChain: func(r engine.ChainResult) { f.mu.Lock(); f.results = append(f.results, r); f.mu.Unlock() }})
	if err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
	until(f.t, 20*time.Second, "every subscription seeded", func() bool {
		subs := eng.Registry().All()
		for _, s := range subs {
			st, err := eng.Poller.Dedup.State(ctx, s.ID)
			if err != nil || !st.Seeded {
				return false
			}
		}
		return true
	})
	return eng
}

// failedChains returns the chains that failed, for error messages.
func (f *packFixture) failedChains() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.results {
		if r.Status == engine.ChainFailed || r.Status == engine.ChainRetry {
			out = append(out, fmt.Sprintf("%s: %v", r.Recipe, r.Err))
		}
	}
	return out
}

// wantWrite is one write the other app must receive: its operation, a part
// of its path, and body fields (gjson path → value).
type wantWrite struct {
	op     string
	path   string
	fields map[string]string
}

// packCase is one shipped recipe's end-to-end run.
type packCase struct {
	recipe string
	// seed prepares data before the engine starts and returns values the
	// act and the wanted writes use.
	seed func(f *packFixture) map[string]string
	// act creates the trigger condition.
	act  func(f *packFixture, v map[string]string)
	want func(v map[string]string) []wantWrite
}

// ghlContact creates a GHL contact directly in the simulator.
func ghlContact(f *packFixture, fields map[string]any) string {
	return f.srv.CreateContact(packLoc, fields)["id"].(string)
}

func rzContact(f *packFixture, email, first string) string {
	return gjson.GetBytes(f.call("referrizer.contacts.upsert", nil, map[string]any{"email": email, "firstName": first}), "id").String()
}

func ghlTask(f *packFixture, contact, title string) string {
	out := f.call("ghl.contacts.tasks.create", map[string]string{"contactId": contact},
		map[string]any{"title": title, "dueDate": "2030-01-02T10:00:00Z", "completed": false})
	return gjson.GetBytes(out, "task.id").String()
}

func rrMember(f *packFixture, email, code string) string {
	out := f.call("referralrock.members.create", nil, map[string]any{"programId": f.program, "firstName": "Mia",
		"lastName": "Stone", "email": email, "referralCode": code})
	return gjson.GetBytes(out, "member.id").String()
}

func rrReferral(f *packFixture, code, email, first string) string {
	out := f.call("referralrock.referrals.create", nil, map[string]any{"referralCode": code, "email": email,
		"firstName": first, "lastName": "Park"})
	return gjson.GetBytes(out, "referral.id").String()
}

func rrUpdateReferral(f *packFixture, id string, fields map[string]any) {
	f.call("referralrock.referrals.update", nil, []any{map[string]any{
		"query": map[string]any{"primaryInfo": map[string]any{"referralId": id}}, "referral": fields}})
}

// checkWrites waits for the wanted writes, checks their fields, then lets
// more polls pass and checks that nothing more was written.
func (f *packFixture) checkWrites(want []wantWrite, quiet time.Duration) {
	f.t.Helper()
	until(f.t, 15*time.Second, "the wanted writes", func() bool { return len(f.writes()) >= len(want) })
	time.Sleep(quiet)
	got := f.writes()
	if len(got) != len(want) {
		var lines []string
		for _, w := range got {
			lines = append(lines, w.Op+" "+w.Path+" "+string(w.Body))
		}
		f.t.Fatalf("%d writes, want %d:\n%s\nfailed chains: %v", len(got), len(want), strings.Join(lines, "\n"), f.failedChains())
	}
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if used[i] || (g.Op != w.op && !slicesContains(g.Ops, w.op)) || !strings.Contains(g.Path, w.path) {
				continue
			}
			if bad := mismatch(g.Body, w.fields); bad != "" {
				f.t.Errorf("%s %s: %s in %s", w.op, g.Path, bad, g.Body)
			}
			used[i], found = true, true
			break
		}
		if !found {
			f.t.Errorf("no write %s on %q among %d writes", w.op, w.path, len(got))
		}
	}
}

// mismatch names the first body field that differs from the wanted value.
func mismatch(body []byte, fields map[string]string) string {
	for path, want := range fields {
		got := gjson.GetBytes(body, path)
		if got.String() != want {
			return fmt.Sprintf("%s = %q, want %q", path, got.String(), want)
		}
	}
	return ""
}

func allConns() map[string]string {
	return map[string]string{"ghl": "ghl-pack", "referrizer": "rz-pack", "referralrock": "rr-pack"}
}
