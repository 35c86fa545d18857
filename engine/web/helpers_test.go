package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/api"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/engine/web"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// site is the pages over an engine that polled the simulator for two
// tenants, acme and beta, until each had a completed run.
type site struct {
	srv               *httptest.Server
	operator, acmeKey string
	acmeRun, betaRun  string
	acmeSub, betaSub  string
	token             string // a token the simulator issued
}

func newSite(t *testing.T) *site {
	t.Helper()
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(cat, sim.Config{})
	ss := httptest.NewServer(s)
	t.Cleanup(ss.Close)
	ring, _ := auth.NewKeyring([]byte(strings.Repeat("w", 32)))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	out := &site{}
	ts := tenant.NewStore(rdb, prefix)
	for _, id := range []string{"acme", "beta"} {
		s.AddLocation("loc-" + id)
		tok := s.IssueToken(sim.TokenSpec{LocationID: "loc-" + id, Private: true})
		out.token = tok.AccessToken
		if err := store.Put(ctx, auth.Connection{ID: id + "-ghl", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc-" + id},
			auth.Credential{AccessToken: tok.AccessToken}); err != nil {
			t.Fatal(err)
		}
		if err := ts.Put(ctx, &tenant.Tenant{ID: id, Name: "Tenant " + id, Connections: map[string]string{"ghl": id + "-ghl"}}); err != nil {
			t.Fatal(err)
		}
	}
	tr := transport.New(transport.Config{Catalog: cat, Connections: store, BaseURL: ss.URL, Logger: log})
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: tr, Redis: rdb, Recipes: []string{"testdata"}, Prefix: prefix,
		Connections: store, Every: time.Second, TickEvery: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	keys := apikey.New(rdb, prefix, "")
	out.operator, _, _ = keys.Create(ctx, "", "ops")
	out.acmeKey, _, _ = keys.Create(ctx, "acme", "acme")
	a := api.New(api.Config{Redis: rdb, Prefix: prefix, Catalog: cat, Keys: keys, Subscriptions: eng.Registry(),
		Connections: store, Poller: eng.Poller, RecipeFiles: []string{"testdata"}, Logger: log})
	mon, closeMon := engine.Handler(rdb, asynq.RedisClientOpt{Addr: redistest.Addr()}, nil)
	t.Cleanup(func() { _ = closeMon() })
	out.srv = httptest.NewServer(web.New(web.Config{API: a, Monitoring: mon, Fallback: mon, Logger: log}))
	t.Cleanup(out.srv.Close)

	subs := map[string]string{}
	for _, sub := range eng.Registry().All() {
		subs[sub.Tenant.ID] = sub.ID
	}
	out.acmeSub, out.betaSub = subs["acme"], subs["beta"]
	h := history.New(rdb, history.Options{Prefix: prefix})
	waitFor(t, 15*time.Second, "both tenants polled", func() bool {
		pa, _ := h.Polls(ctx, out.acmeSub, 1)
		pb, _ := h.Polls(ctx, out.betaSub, 1)
		return len(pa) > 0 && len(pb) > 0
	})
	s.CreateContact("loc-acme", map[string]any{"firstName": "Grace", "lastName": "Hopper"})
	s.CreateContact("loc-beta", map[string]any{"firstName": "Betty", "lastName": "Holberton"})
	waitFor(t, 15*time.Second, "a run of each tenant", func() bool {
		ca, _ := h.Chains(ctx, out.acmeSub, 1)
		cb, _ := h.Chains(ctx, out.betaSub, 1)
		if len(ca) == 0 || len(cb) == 0 || ca[0].Status != "completed" || cb[0].Status != "completed" {
			return false
		}
		out.acmeRun = out.acmeSub + "." + strconv.FormatInt(ca[0].Time.UnixNano(), 10)
		out.betaRun = out.betaSub + "." + strconv.FormatInt(cb[0].Time.UnixNano(), 10)
		return true
	})
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client is a browser-like client with its own cookie jar that does not
// follow redirects.
type client struct {
	t    *testing.T
	base string
	jar  []*http.Cookie
}

func (c *client) do(method, path string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, ck := range c.jar {
		req.AddCookie(ck)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	c.jar = append(c.jar, resp.Cookies()...)
	return resp, string(b)
}
