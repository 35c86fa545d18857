package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	// vcsErr is why the binary was built without the source revision
	// (nil when it has it).
	vcsErr error
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// ghlflowBin builds the binary once per test run (removed by TestMain),
// with the source revision whatever GOFLAGS says; where the revision
// cannot be had (not a git checkout, no git) it builds without it and
// vcsErr tells why.
func ghlflowBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ghlflow-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ghlflow")
		out, err := exec.Command("go", "build", "-buildvcs=true", "-o", binPath, ".").CombinedOutput()
		if err == nil {
			return
		}
		vcsErr = fmt.Errorf("go build -buildvcs=true: %v\n%s", err, out)
		out, err = exec.Command("go", "build", "-buildvcs=false", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type e2eEnv struct {
	t       *testing.T
	cat     *catalog.Catalog
	srv     *sim.Server
	loc     string
	rdb     *redis.Client
	redis   string
	prefix  string
	conns   string
	recipes string
	http    string
	key     string // GHLFLOW_SECRET_KEY of the run
	admin   string // GHLFLOW_ADMIN_TOKEN of the run
	token   string // the simulator's token of connection acme
	simURL  string
}

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	// Each test has its own key prefix, and so its own queues (named after
	// the prefix); it deletes only those afterwards.
	rdb, prefix := redistest.New(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	// A budget far above what the tests spend: the limiter learns it from the
	// X-RateLimit-* headers and paces nothing.
	srv := sim.New(cat, sim.Config{Burst: 100000, Daily: -1})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	loc := "locE2ETEST0000000000"
	srv.AddLocation(loc)
	tok := srv.IssueToken(sim.TokenSpec{LocationID: loc, Private: true})
	dir := t.TempDir()
	conns := filepath.Join(dir, "connections.yaml")
	body := fmt.Sprintf("connections:\n  - {id: acme, app: ghl, location_id: %q, base_url: %q, token: %q}\n", loc, ts.URL, tok.AccessToken)
	if err := os.WriteFile(conns, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return &e2eEnv{t: t, cat: cat, srv: srv, loc: loc, rdb: rdb, redis: "redis://" + redistest.Addr() + "/0",
		prefix: prefix, conns: conns, recipes: "testdata/e2erecipes", http: freeAddr(t), key: auth.GenerateKey(), admin: auth.GenerateKey(),
		simURL: ts.URL, token: tok.AccessToken}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuf is a goroutine-safe output buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `ghlflow run` as a process.
func (e *e2eEnv) start(extra ...string) (*exec.Cmd, *syncBuf) {
	e.t.Helper()
	args := []string{"run", "--recipes", e.recipes, "--redis", e.redis, "--http", e.http, "--prefix", e.prefix,
		"--every", "1s", "--tick", "100ms"}
	if e.conns != "" {
		args = append(args, "--connections", e.conns)
	}
	args = append(args, extra...)
	cmd := exec.Command(ghlflowBin(e.t), args...)
	cmd.Env = append(os.Environ(), auth.EnvSecretKey+"="+e.key, EnvAdminToken+"="+e.admin)
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

func (e *e2eEnv) subID() string { return engine.SubscriptionID("e2e-tag-new-contacts", "acme") }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, out *syncBuf, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out != nil {
		t.Logf("process output:\n%s", out.String())
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *e2eEnv) polls() int64 {
	polls, _ := history.New(e.rdb, history.Options{Prefix: e.prefix}).Polls(context.Background(), e.subID(), 0)
	return int64(len(polls))
}

// TestRunWithStoredOAuthConnection: the engine calls through an OAuth
// connection of the sealed store; its access token is due, so the first call
// refreshes it (GHL rotates the refresh token, and the old one is refused
// afterwards) and the chains' writes arrive. The install pages are served.
func TestRunWithStoredOAuthConnection(t *testing.T) {
	e := newE2E(t)
	e.conns = "" // the connection comes from the store alone
	ctx := context.Background()
	keys, err := auth.LoadKeyring(auth.KeyConfig{Keys: e.key})
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: e.rdb, Prefix: e.prefix, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.srv.IssueToken(sim.TokenSpec{LocationID: e.loc})
	if tok.RefreshToken == "" {
		t.Fatal("the simulator issued no refresh token")
	}
	err = store.Put(ctx, auth.Connection{ID: "acme", App: "ghl", Kind: auth.KindOAuth, LocationID: e.loc, Scopes: tok.Scopes,
		BaseURL: e.simURL, Status: auth.StatusOK},
		auth.Credential{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(auth.EnvGHLClientID, "sim-client")
	t.Setenv(auth.EnvGHLClientSecret, "sim-secret")
	_, out := e.start("--base-url", e.simURL)
	waitFor(t, 30*time.Second, "the first poll", out, func() bool { return e.polls() >= 1 })
	e.srv.CreateContact(e.loc, map[string]any{"firstName": "Oauth", "email": "oauth@example.com"})
	waitFor(t, 30*time.Second, "the note", out, func() bool { return len(e.srv.Writes("ghl.contacts.notes.create")) >= 1 })

	// The token was refreshed ahead of its expiry, and the refresh token
	// rotated: the old one no longer works.
	got, err := store.Resolve(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.Cred.AccessToken == tok.AccessToken || got.Cred.RefreshToken == tok.RefreshToken {
		t.Fatalf("the stored token was not refreshed\n%s", out.String())
	}
	if n := e.srv.RequestCount("oauth.token", ""); n != 1 {
		t.Fatalf("%d calls to the token endpoint, want one refresh", n)
	}
	if _, metrics := getWithKey("http://"+e.http+"/metrics", e.admin); !strings.Contains(metrics, `ghlflow_token_refreshes_total{result="ok"} 1`) {
		t.Errorf("/metrics does not count the refresh:\n%s", grepLines(metrics, "ghlflow_token"))
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		"client_id": {"sim-client"}, "client_secret": {"sim-secret"}}
	resp, err := http.PostForm(e.simURL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("the old refresh token still works: %d", resp.StatusCode)
	}
	if strings.Contains(out.String(), tok.AccessToken) || strings.Contains(out.String(), got.Cred.AccessToken) {
		t.Fatal("a token reached the logs")
	}

	// The install flow starts at /oauth/start and sends the user to the
	// authorize page with a state.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := "http://" + e.http + "/oauth/start?app=ghl&name=second&scopes=contacts.readonly"
	resp, err = client.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("/oauth/start without a key: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", start, nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "/oauth/chooselocation") || !strings.Contains(loc, "state=") {
		t.Fatalf("/oauth/start: %d %s", resp.StatusCode, loc)
	}
}

func TestRunEndToEnd(t *testing.T) {
	overlapInShort(t)
	e := newE2E(t)
	for i := range 50 {
		e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("Old%d", i), "email": fmt.Sprintf("old%d@example.com", i)})
	}
	cmd, out := e.start()
	waitFor(t, 30*time.Second, "the first poll", out, func() bool { return e.polls() >= 1 })
	var ids []string
	for i := range 7 {
		c := e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("New%d", i), "email": fmt.Sprintf("new%d@example.com", i)})
		ids = append(ids, fmt.Sprint(c["id"]))
	}
	waitFor(t, 30*time.Second, "7 notes", out, func() bool { return len(e.srv.Writes("ghl.contacts.notes.create")) >= 7 })
	time.Sleep(2 * time.Second) // two more polls: nothing else may fire
	tags := e.srv.Writes("ghl.contacts.tags.add")
	notes := e.srv.Writes("ghl.contacts.notes.create")
	if len(tags) != 7 || len(notes) != 7 {
		t.Fatalf("writes: %d tags, %d notes; want 7 each\n%s", len(tags), len(notes), out.String())
	}
	// Chains are enqueued oldest first; with several workers they may finish
	// in any order, so each contact must get exactly its own note.
	byContact := map[string]string{}
	for _, w := range notes {
		byContact[w.Path] = string(w.Body)
	}
	for i, id := range ids {
		body, ok := byContact["/contacts/"+id+"/notes"]
		want := fmt.Sprintf("Welcome New%d (seen-new%d)", i, i)
		if !ok || !strings.Contains(body, want) {
			t.Errorf("contact %d (%s): note %q, want %q", i, id, body, want)
		}
	}
	if got := strings.Count(out.String(), "msg=chain "); got != 7 {
		t.Errorf("%d chain log lines, want 7", got)
	}

	// /monitoring and the API need the operator key.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + e.http + "/monitoring/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("/monitoring/ without a key: %d", resp.StatusCode)
	}
	var runs struct {
		Items []struct{ Status, Recipe string }
	}
	if err := getJSON("http://"+e.http+"/api/v1/runs?status=completed&limit=100", e.admin, &runs); err != nil || len(runs.Items) != 7 {
		t.Fatalf("/api/v1/runs: %v %+v", err, runs)
	}
	req, _ := http.NewRequest("GET", "http://"+e.http+"/monitoring/", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Asynq - Monitoring") {
		t.Fatalf("/monitoring/: %d %.200s", resp.StatusCode, page)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": `ghlflow_chain_runs_total{recipe="e2e-tag-new-contacts",status="completed"} 7`} {
		code, body := getWithKey("http://"+e.http+path, e.admin)
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("%s: %d, want %q in\n%.2000s", path, code, want, body)
		}
	}
	// /metrics on --http takes an operator key.
	for _, key := range []string{"", "wrong"} {
		if code, _ := getWithKey("http://"+e.http+"/metrics", key); code != http.StatusUnauthorized {
			t.Errorf("/metrics with key %q: %d, want 401", key, code)
		}
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no graceful exit")
	}
}

// getWithKey returns the status and body of GET url with an API key (none
// when key is empty).
func getWithKey(url, key string) (int, string) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// getJSON reads url with an API key into out.
func getJSON(url, key string, out any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// overlapInShort lets a test that mostly waits on the processes it starts
// run beside the others in the fast loop (-short); `make test` runs it alone.
func overlapInShort(t *testing.T) {
	if testing.Short() {
		t.Parallel()
	}
}
