package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

	mu     sync.Mutex
	bodies []string // every response body the fixture's client read
	check  checker
}

func newFixture(t *testing.T, recipesDir string) *fixture {
	t.Helper()
	rdb, prefix := redistest.New(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(cat, sim.Config{})
	ss := httptest.NewServer(s)
	t.Cleanup(ss.Close)
	ring, err := auth.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// One connection of a static file, as `run --connections` reads it.
	s.AddLocation("loc-static")
	static, err := auth.NewStatic(auth.StaticEntry{ID: "static-ghl", App: "ghl", LocationID: "loc-static",
		Token: s.IssueToken(sim.TokenSpec{LocationID: "loc-static", Private: true}).AccessToken})
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
	a := api.New(api.Config{Redis: rdb, Prefix: prefix, Catalog: cat, Keys: keys, Subscriptions: eng.Registry(),
		Connections: store, StaticConnections: static.List(), Poller: eng.Poller, RecipeFiles: []string{recipesDir}, Logger: log})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &fixture{t: t, rdb: rdb, prefix: prefix, cat: cat, sim: s, simURL: ss.URL, eng: eng, api: a, srv: srv, keys: keys, admin: admin}
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
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
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
