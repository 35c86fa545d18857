package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
)

// rolesRun is the engine split in processes: serve, two schedulers and a
// worker, all against one Redis URL, with a tenant and a stored recipe.
type rolesRun struct {
	e      *e2eEnv
	redis  string
	procs  map[string]*rolesProc
	served *servedLog
}

type rolesProc struct {
	cmd    *exec.Cmd
	out    *syncBuf
	http   string
	key    string     // the operator key sent with requests
	served *servedLog // where the bodies it answers are kept (nil: not kept)
}

// servedLog keeps the response bodies the test read, and the secrets
// none of them may carry.
type servedLog struct {
	mu      sync.Mutex
	bodies  []servedBody
	secrets map[string]string // secret → what it is
}

// servedBody is a response body; shows is the one secret it may carry (a
// key in the response that made it).
type servedBody struct {
	what, text, shows string
}

func newServedLog() *servedLog { return &servedLog{secrets: map[string]string{}} }

func (l *servedLog) add(what, text, shows string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.bodies = append(l.bodies, servedBody{what: what, text: text, shows: shows})
	l.mu.Unlock()
}

func (l *servedLog) secret(what, s string) {
	if l == nil || s == "" {
		return
	}
	l.mu.Lock()
	l.secrets[s] = what
	l.mu.Unlock()
}

// check fails t when a body carries a secret; it returns how many bodies
// it searched for how many secrets.
func (l *servedLog) check(t *testing.T) (int, int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bodies {
		for s, what := range l.secrets {
			if s != b.shows && strings.Contains(b.text, s) {
				t.Errorf("%s: the response carries %s: %.300s", b.what, what, b.text)
			}
		}
	}
	return len(l.bodies), len(l.secrets)
}

// ghlflowCmd runs a one-shot ghlflow command and fails t when it fails.
func (r *rolesRun) ghlflowCmd(args ...string) string {
	r.e.t.Helper()
	cmd := exec.Command(ghlflowBin(r.e.t), append(args, "--redis", r.redis, "--prefix", r.e.prefix)...)
	cmd.Env = append(os.Environ(), auth.EnvSecretKey+"="+r.e.key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.e.t.Fatalf("ghlflow %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs role as a process. Settings come from the command line and
// from GHLFLOW_* variables alike.
func (r *rolesRun) start(name, role string, extra ...string) *rolesProc {
	t := r.e.t
	t.Helper()
	p := &rolesProc{http: freeAddr(t), out: &syncBuf{}, key: r.e.admin, served: r.served}
	args := append([]string{role, "--recipes", t.TempDir(), "--connections", r.e.conns, "--http", p.http}, extra...)
	p.cmd = exec.Command(ghlflowBin(t), args...)
	p.cmd.Env = append(os.Environ(), auth.EnvSecretKey+"="+r.e.key, EnvAdminToken+"="+r.e.admin, "REDIS_URL="+r.redis, "GHLFLOW_PREFIX="+r.e.prefix,
		"GHLFLOW_EVERY=1s", "GHLFLOW_TICK=100ms")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	r.procs[name] = p
	return p
}

// get returns the status and body of GET path on p's HTTP address, with
// the operator key.
func (p *rolesProc) get(path string) (int, string) {
	code, body := getWithKey("http://"+p.http+path, p.key)
	p.served.add("GET "+path, body, "")
	return code, body
}

func (r *rolesRun) output() string {
	var b strings.Builder
	for name, p := range r.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", name, p.out.String())
	}
	return b.String()
}

// stop sends SIGTERM to every process and wants each to exit cleanly.
func (r *rolesRun) stop() {
	t := r.e.t
	for name, p := range r.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exit: %v\n%s", name, err, p.out.String())
			}
		case <-time.After(40 * time.Second):
			t.Errorf("%s: no graceful exit", name)
		}
	}
}

// call sends method path with body to p's API with the operator key and
// wants status; it returns the answer's body.
func (p *rolesProc) call(t *testing.T, method, path, body string, status int) []byte {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.http+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	shows := ""
	if method == http.MethodPost && strings.HasSuffix(path, "/keys") && resp.StatusCode == http.StatusCreated {
		var nk struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(got, &nk); err != nil || nk.Key == "" {
			t.Fatalf("a new key's response: %v: %s", err, got)
		}
		shows = nk.Key
		p.served.secret("a tenant's API key", nk.Key)
	}
	p.served.add(method+" "+path, string(got), shows)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s, want %d\nits log:\n%s", method, path, resp.StatusCode, got, status, p.out.String())
	}
	return got
}

// completedRuns counts the completed runs of tenant the API lists.
func (p *rolesProc) completedRuns(tenant string) int {
	var l struct {
		Items []struct {
			Tenant, Status string
		} `json:"items"`
	}
	code, body := p.get("/api/v1/runs?status=completed&limit=500&tenant=" + tenant)
	if code != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil {
		return -1
	}
	return len(l.Items)
}

// runRoles runs the split engine on redisURL: it starts the roles, stores
// a tenant and a tenant recipe through serve's API and a tenant whose
// connection does not exist through the CLI (the API refuses it), creates
// contacts in the simulator and waits until the API lists every run
// completed and the simulator has every note, none lost. during, when set,
// runs while chains are under way. No response the test reads from the
// processes (serve's API above all) carries a secret: the simulator's
// token, the stored basic keys and Referrizer token, the secret key, the
// operator token, or a tenant key but in the response that made it.
func runRoles(t *testing.T, e *e2eEnv, redisURL string, contacts int, during func()) *rolesRun {
	r := &rolesRun{e: e, redis: redisURL, procs: map[string]*rolesProc{}, served: newServedLog()}
	r.served.secret("the simulator's access token", e.token)
	r.served.secret("the secret key", e.key)
	r.served.secret("the operator token", e.admin)
	for i := range 20 {
		e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("Old%d", i), "email": fmt.Sprintf("old%d@example.com", i)})
	}
	metricsAddr := freeAddr(t)
	serve := r.start("serve", "serve", "--metrics-addr", metricsAddr)
	r.start("scheduler-1", "scheduler")
	r.start("scheduler-2", "scheduler")
	worker := r.start("worker", "worker", "--log-format", "json", "--chain-concurrency", "4")
	for name, p := range r.procs {
		waitFor(t, 60*time.Second, name+" ready", p.out, func() bool { code, _ := p.get("/readyz"); return code == 200 })
	}
	recipe, err := os.ReadFile(filepath.Join("testdata", "rolesrecipes", "welcome.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	serve.call(t, "PUT", "/recipes/roles-welcome", string(recipe), http.StatusOK)
	serve.call(t, "POST", "/tenants", `{"id": "acme-t", "name": "Acme", "connections": {"ghl": "acme"}}`, http.StatusCreated)
	// The API refuses a connection that exists nowhere; the CLI accepts one
	// still to be installed when told so, and its polls fail.
	serve.call(t, "POST", "/tenants", `{"id": "broken", "name": "Broken", "connections": {"ghl": "nope"}}`, http.StatusUnprocessableEntity)
	r.ghlflowCmd("tenant", "add", "broken", "--name", "Broken", "--connection", "ghl=nope", "--allow-missing")
	rr := e.srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: e.loc})
	rz := e.srv.IssueToken(sim.TokenSpec{App: "referrizer", LocationID: e.loc})
	r.served.secret("a Referral Rock private key", rr.Password)
	r.served.secret("a Referrizer token", rz.AccessToken)
	serve.call(t, "POST", "/tenants/acme-t/connections", fmt.Sprintf(`{"role": "referralrock", "app": "referralrock", "kind": "basic", "username": %q, "password": %q}`,
		rr.Username, rr.Password), http.StatusCreated)
	serve.call(t, "POST", "/tenants/acme-t/connections", fmt.Sprintf(`{"role": "referrizer", "app": "referrizer", "kind": "apikey", "token": %q}`,
		rz.AccessToken), http.StatusCreated)
	serve.call(t, "POST", "/tenants/acme-t/keys", `{"name": "acme's"}`, http.StatusCreated)
	waitFor(t, 60*time.Second, "the first poll", worker.out, func() bool {
		_, body := worker.get("/metrics")
		return strings.Contains(body, `ghlflow_poll_results_total{result="ok"}`)
	})
	half := contacts / 2
	for i := range contacts {
		e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("New%d", i), "email": fmt.Sprintf("new%d@example.com", i)})
		if i == half && during != nil {
			waitFor(t, 60*time.Second, "the first notes", nil, func() bool { return len(e.srv.Writes("ghl.contacts.notes.create")) >= 1 })
			during()
		}
	}
	waitFor(t, 120*time.Second, fmt.Sprintf("%d completed runs in the API", contacts), nil, func() bool {
		return serve.completedRuns("acme-t") >= contacts
	})
	time.Sleep(3 * time.Second) // more polls: nothing else may fire
	notes := e.srv.Writes("ghl.contacts.notes.create")
	seen := map[string]int{}
	for _, w := range notes {
		seen[w.Path]++
	}
	// Every new contact, and no other, gets its note. Across a failover a
	// write the old master acknowledged but had not replicated may be lost,
	// so a chain may run twice (at least once); without one, exactly once.
	twice := len(notes) - len(seen)
	if len(seen) != contacts || (during == nil && twice != 0) {
		t.Fatalf("%d notes on %d contacts, want one on each of %d\n%s", len(notes), len(seen), contacts, r.output())
	}
	if twice > 0 {
		t.Logf("%d of %d notes written twice across the failover", twice, contacts)
	}
	if code, body := serve.get("/monitoring/"); code != 200 || !strings.Contains(body, "Asynq - Monitoring") {
		t.Errorf("serve /monitoring/: %d %.200s", code, body)
	}
	// serve's metrics are on --metrics-addr alone.
	if code, _ := serve.get("/metrics"); code != http.StatusNotFound {
		t.Errorf("serve /metrics on --http: %d, want 404 with --metrics-addr", code)
	}
	if code, body := (&rolesProc{http: metricsAddr, served: r.served}).get("/metrics"); code != 200 || !strings.Contains(body, "ghlflow_queue_tasks") {
		t.Errorf("serve --metrics-addr /metrics: %d %.200s", code, body)
	}
	// What an operator reads of the tenant: its connections, its
	// subscriptions, its runs with each step's input and output.
	// A stored connection is removed (on Redis Cluster too: its keys and
	// the set of ids are in two hash slots).
	serve.call(t, "DELETE", "/tenants/acme-t/connections/referrizer", "", http.StatusNoContent)
	if got := string(serve.call(t, "GET", "/tenants/acme-t/connections", "", http.StatusOK)); !strings.Contains(got, `"role":"referralrock"`) ||
		strings.Contains(got, "referrizer") {
		t.Errorf("acme-t's connections after removing referrizer: %s", got)
	}
	serve.call(t, "GET", "/tenants", "", http.StatusOK)
	serve.call(t, "GET", "/subscriptions", "", http.StatusOK)
	var runs struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(serve.call(t, "GET", "/runs?tenant=acme-t", "", http.StatusOK), &runs); err != nil || len(runs.Items) == 0 {
		t.Fatalf("acme-t's runs: %v %+v", err, runs)
	}
	serve.call(t, "GET", "/runs/"+runs.Items[0].ID, "", http.StatusOK)
	n, secrets := r.served.check(t)
	t.Logf("%d responses of serve searched for %d secrets", n, secrets)
	return r
}

// TestRolesEndToEnd: serve, two schedulers and a worker as four processes
// share the work through Redis; the worker's /metrics show the poll and
// the chains, and a failed poll's reason is in its log, as JSON.
func TestRolesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	e := newE2E(t)
	r := runRoles(t, e, e.redis, 6, nil)
	worker, sched := r.procs["worker"], r.procs["scheduler-1"]
	_, metrics := worker.get("/metrics")
	for _, want := range []string{
		`ghlflow_poll_results_total{result="ok"}`,
		`ghlflow_poll_results_total{result="error"}`,
		`ghlflow_poll_lag_seconds_count`,
		`ghlflow_items_read_total`,
		`ghlflow_items_new_total 6`,
		`ghlflow_chain_runs_total{recipe="roles-welcome",status="completed"} 6`,
		`ghlflow_step_seconds_count{op="ghl.contacts.notes.create"} 6`,
		`ghlflow_api_calls_total{app="ghl",op="ghl.contacts.search",status="200"}`,
		`ghlflow_api_calls_total{app="ghl",op="ghl.contacts.notes.create",status="201"} 6`,
		`ghlflow_rate_limiter_wait_seconds_count{app="ghl"}`,
		`ghlflow_queue_tasks{queue="chain",state="pending"}`,
		`ghlflow_subscriptions{status="active"} 2`,
		`ghlflow_tenants{status="active"} 2`,
		`ghlflow_failures_total{action=`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("worker /metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `tenant="`) {
		t.Error("a series carries a tenant label")
	}
	if _, m := sched.get("/metrics"); !strings.Contains(m, `ghlflow_poll_slots_total{result="enqueued"}`) {
		t.Errorf("scheduler /metrics lacks the enqueued slots")
	}
	r.stop()
	failed := pollFailures(t, worker.out.String())
	if len(failed) == 0 {
		t.Fatalf("no poll failure logged\n%s", worker.out.String())
	}
	for _, f := range failed {
		if f["tenant"] != "broken" || f["recipe"] != "roles-welcome" || f["sub"] == "" || f["run"] == "" || f["slot"] == nil ||
			!strings.Contains(fmt.Sprint(f["err"]), "nope") {
			t.Errorf("poll failure line %v: want tenant broken, recipe, sub, run and the reason", f)
		}
	}
	runs := map[string]int{}
	for _, f := range failed {
		runs[fmt.Sprint(f["run"], "/", f["slot"])]++
	}
	for run, n := range runs {
		if n > 1 {
			t.Errorf("poll %s logged as failed %d times", run, n)
		}
	}
}

// pollFailures returns the worker's JSON log lines of failed polls.
func pollFailures(t *testing.T, log string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("worker log line is not JSON: %q", sc.Text())
		}
		if line["msg"] == "poll failed" {
			out = append(out, line)
		}
	}
	return out
}

// TestRolesInstant: serve receives the simulator's signed webhooks and a
// worker in another process routes them: a new contact's chain of a
// 15-minute recipe runs within seconds, once.
func TestRolesInstant(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	e := newE2E(t)
	key := filepath.Join(t.TempDir(), "ghl-webhook.pem")
	writeTestFile(t, key, e.srv.WebhookPublicKeyPEM())
	r := &rolesRun{e: e, redis: e.redis, procs: map[string]*rolesProc{}}
	args := []string{"--recipes", "testdata/instantrecipes", "--every", "15m"}
	serve := r.start("serve", "serve", append(args, "--ghl-webhook-key", key)...)
	r.start("scheduler", "scheduler", args...)
	r.start("worker", "worker", args...)
	for name, p := range r.procs {
		waitFor(t, 60*time.Second, name+" ready", p.out, func() bool { code, _ := p.get("/readyz"); return code == 200 })
	}
	e.srv.AddWebhook("http://" + serve.http + "/webhooks/ghl")
	t.Cleanup(e.srv.Close)
	time.Sleep(500 * time.Millisecond) // the worker's router joins its consumer group
	created := time.Now()
	id := fmt.Sprint(e.srv.CreateContact(e.loc, map[string]any{"firstName": "Instant"})["id"])
	waitFor(t, 10*time.Second, "the instant chain's note", nil, func() bool { return e.notes()[id] == 1 })
	t.Logf("contact created → note written in %v across serve and worker", time.Since(created))
	time.Sleep(time.Second)
	if n := e.notes()[id]; n != 1 {
		t.Fatalf("%d notes, want one\n%s", n, r.output())
	}
	r.stop()
}
