package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/api"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// fixture is an engine polling the simulator every second, its sealed
// connection store and a static connection (static-ghl), and the API
// over them on a real HTTP server.
type fixture struct {
	t      *testing.T
	rdb    *redis.Client
	prefix string
	cat    *catalog.Catalog
	sim    *sim.Server
	simURL string
	eng    *engine.Engine
	api    *api.API
	srv    *httptest.Server
	keys   *apikey.Store
	admin  string // an operator key

	mu      sync.Mutex
	bodies  []respBody        // every response body the fixture's client read
	secrets map[string]string // every secret issued in the test, by what it is
	leaks   map[leak]bool     // the leaks reported
	check   checker
}

// respBody is a response body; shows is the one secret it may carry (the key
// a POST of a tenant's keys made).
type respBody struct {
	text, shows string
}

func newFixture(t *testing.T, recipesDir string) *fixture {
	t.Helper()
	rdb, prefix := redistest.New(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, rdb: rdb, prefix: prefix, cat: cat, secrets: map[string]string{}, leaks: map[leak]bool{}}
	clientSecret := randomSecret(t)
	f.secret("the OAuth client secret", clientSecret)
	s := sim.New(cat, sim.Config{ClientID: "api-test-client", ClientSecret: clientSecret})
	ss := httptest.NewServer(&tokenRecorder{next: s, f: f})
	t.Cleanup(ss.Close)
	// The install callback, where the simulator's authorize page sends
	// the user.
	mux := http.NewServeMux()
	oauthSrv := httptest.NewServer(mux)
	t.Cleanup(oauthSrv.Close)
	app, err := auth.NewOAuthApp(cat.App("ghl"), ss.URL, "api-test-client", clientSecret, oauthSrv.URL+"/oauth/callback")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := auth.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring, Logger: log,
		OAuth: map[string]*auth.OAuthApp{"ghl": app}})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/oauth/", store.InstallHandler())
	// One connection of a static file, as `run --connections` reads it.
	s.AddLocation("loc-static")
	staticTok := s.IssueToken(sim.TokenSpec{LocationID: "loc-static", Private: true}).AccessToken
	f.secret("the static connection's token", staticTok)
	static, err := auth.NewStatic(auth.StaticEntry{ID: "static-ghl", App: "ghl", LocationID: "loc-static", Token: staticTok})
	if err != nil {
		t.Fatal(err)
	}
	conns := auth.Multi{static, store}
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ss.URL, Logger: log})
	store.UseExchanger(tr)
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: tr, Redis: rdb, Recipes: []string{recipesDir}, Prefix: prefix,
		Connections: conns, Every: time.Second, TickEvery: 100 * time.Millisecond, TenantRefresh: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keys := apikey.New(rdb, prefix, "")
	admin, _, err := keys.Create(context.Background(), "", "test operator")
	if err != nil {
		t.Fatal(err)
	}
	f.secret("the operator's API key", admin)
	a := api.New(api.Config{Redis: rdb, Prefix: prefix, Catalog: cat, Keys: keys, Subscriptions: eng.Registry(),
		Connections: store, StaticConnections: static.List(), Poller: eng.Poller, RecipeFiles: []string{recipesDir}, Logger: log})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	f.sim, f.simURL, f.eng, f.api, f.srv, f.keys, f.admin = s, ss.URL, eng, a, srv, keys, admin
	t.Cleanup(f.noSecretsInBodies)
	return f
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// secret records a secret no response may carry.
func (f *fixture) secret(what, s string) {
	if s == "" {
		return
	}
	f.mu.Lock()
	f.secrets[s] = what
	f.mu.Unlock()
}

// issue issues a credential in the simulator and records its secrets.
func (f *fixture) issue(spec sim.TokenSpec) sim.Token {
	tok := f.sim.IssueToken(spec)
	f.secret("an access token", tok.AccessToken)
	f.secret("a refresh token", tok.RefreshToken)
	f.secret("a basic-auth password", tok.Password)
	return tok
}

// noSecretsInBodies fails the test when a response body carries a secret
// issued in the test: a token, a password, the OAuth client secret or an
// API key (but the key in the one response that made it).
func (f *fixture) noSecretsInBodies() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.secrets) < 2 {
		f.t.Errorf("only %d secrets recorded", len(f.secrets))
	}
	for i, b := range f.bodies {
		for s, what := range f.secrets {
			if s != b.shows && strings.Contains(b.text, s) && !f.leaks[leak{i, s}] {
				f.leaks[leak{i, s}] = true
				f.t.Errorf("a response carries %s: %s", what, b.text)
			}
		}
	}
}

// leak is a secret found in the response of that index.
type leak struct {
	body   int
	secret string
}

// checkedBodies is how many responses were read and how many secrets
// they were searched for.
func (f *fixture) checkedBodies() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies), len(f.secrets)
}

// tokenRecorder passes requests to the simulator and records the tokens
// its OAuth endpoints hand out.
type tokenRecorder struct {
	next http.Handler
	f    *fixture
}

func (r *tokenRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !strings.HasPrefix(req.URL.Path, "/oauth/") {
		r.next.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	r.next.ServeHTTP(rec, req)
	var out struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &out) == nil {
		r.f.secret("an access token from "+req.URL.Path, out.Access)
		r.f.secret("a refresh token from "+req.URL.Path, out.Refresh)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// run starts the engine until the test ends.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.eng.Run(ctx); err != nil {
			f.t.Error(err)
		}
	}()
	f.t.Cleanup(func() { cancel(); <-done })
}

// do sends a request with key and returns the status and body; a map or
// struct body is sent as JSON, a string as is.
func (f *fixture) do(key, method, path string, body any) (int, []byte) {
	f.t.Helper()
	resp, b := f.send(key, method, path, body)
	return resp.StatusCode, b
}

func (f *fixture) send(key, method, path string, body any) (*http.Response, []byte) {
	f.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	shows := ""
	if method == http.MethodPost && strings.HasSuffix(path, "/keys") && resp.StatusCode == http.StatusCreated {
		var nk api.NewKey
		if err := json.Unmarshal(b, &nk); err != nil || nk.Key == "" {
			f.t.Fatalf("a new key's response: %v: %s", err, b)
		}
		shows = nk.Key
		f.secret("an API key", nk.Key)
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, respBody{text: string(b), shows: shows})
	f.mu.Unlock()
	f.checkResponse(req, resp, b)
	return resp, b
}

// must sends a request that must answer want and decodes its body into out.
func (f *fixture) must(key, method, path string, body any, want int, out any) {
	f.t.Helper()
	code, b := f.do(key, method, path, body)
	if code != want {
		f.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// until waits for cond, failing after d.
func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// install asks the API for an OAuth install link for a tenant's role and
// follows it as the tenant's user would, choosing location loc: the
// simulator's authorize page approves at once and sends the user back to
// the install callback, which stores the connection.
func (f *fixture) install(tenantID, role, loc string, scopes ...string) api.InstallLink {
	f.t.Helper()
	link := f.installLink(tenantID, role, scopes...)
	f.follow(link, loc)
	return link
}

// installLink asks the API for an OAuth install link without following it.
func (f *fixture) installLink(tenantID, role string, scopes ...string) api.InstallLink {
	f.t.Helper()
	var link api.InstallLink
	f.must(f.admin, "POST", "/api/v1/tenants/"+tenantID+"/connections:install", map[string]any{"role": role, "scopes": scopes}, 201, &link)
	if !strings.HasPrefix(link.URL, f.simURL+"/oauth/chooselocation?") || link.Connection != tenantID+"-"+role {
		f.t.Fatalf("install link %+v", link)
	}
	return link
}

// follow follows an install link through the authorize page, where the
// user chooses location loc (the simulator's location_id), and the
// callback.
func (f *fixture) follow(link api.InstallLink, loc string) {
	f.t.Helper()
	resp, err := http.Get(link.URL + "&location_id=" + url.QueryEscape(loc))
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), link.Connection) {
		f.t.Fatalf("the install ended with %d: %s", resp.StatusCode, b)
	}
}
