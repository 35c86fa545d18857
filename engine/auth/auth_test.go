package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/tidwall/gjson"
)

const (
	keyA = "l0xq3k6t8m8oY6Y0Qf1n7l4b3Lz3tV2yq0P1r2s3t4U="
	keyB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestSealing(t *testing.T) {
	ring := testKeyring(t, keyA)
	sealed, err := ring.Seal([]byte("top secret"), []byte("conn:a"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "top secret") {
		t.Fatal("sealed value holds the plain text")
	}
	if got, err := ring.Open(sealed, []byte("conn:a")); err != nil || string(got) != "top secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := ring.Open(sealed, []byte("conn:b")); !errors.Is(err, auth.ErrSealed) {
		t.Fatalf("moved to another connection: %v", err)
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if _, err := ring.Open(tampered, []byte("conn:a")); !errors.Is(err, auth.ErrSealed) {
		t.Fatalf("tampered: %v", err)
	}
	// Rotation: the new key in front seals, the old one still opens.
	rotated := testKeyring(t, keyB, keyA)
	if got, err := rotated.Open(sealed, []byte("conn:a")); err != nil || string(got) != "top secret" {
		t.Fatalf("old key after rotation: %v", err)
	}
	if rotated.Current(sealed) {
		t.Fatal("a value sealed with the old key counts as current")
	}
	if _, err := testKeyring(t, keyB).Open(sealed, []byte("conn:a")); !errors.Is(err, auth.ErrSealed) {
		t.Fatalf("open without the key: %v", err)
	}
}

func TestLoadKeyring(t *testing.T) {
	t.Setenv(auth.EnvSecretKey, "")
	t.Setenv(auth.EnvSecretKeyFile, "")
	if _, err := auth.LoadKeyring(auth.KeyConfig{}); !errors.Is(err, auth.ErrNoKey) {
		t.Fatalf("no key, not dev: %v", err)
	}
	t.Setenv(auth.EnvSecretKey, keyB+","+keyA)
	ring, err := auth.LoadKeyring(auth.KeyConfig{})
	if err != nil || len(ring.KeyIDs()) != 2 {
		t.Fatalf("env keys: %v", err)
	}
	t.Setenv(auth.EnvSecretKey, "")
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("# newest first\n"+keyA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(auth.EnvSecretKeyFile, file)
	if ring, err = auth.LoadKeyring(auth.KeyConfig{}); err != nil || len(ring.KeyIDs()) != 1 {
		t.Fatalf("key file: %v", err)
	}
	t.Setenv(auth.EnvSecretKeyFile, "")
	t.Setenv(auth.EnvSecretKey, "c2hvcnQ=")
	if _, err := auth.LoadKeyring(auth.KeyConfig{}); err == nil {
		t.Fatal("a short key was accepted")
	}
	t.Setenv(auth.EnvSecretKey, "")
	var logs syncBuffer
	dev := filepath.Join(t.TempDir(), "dev.key")
	cfg := auth.KeyConfig{Dev: true, DevFile: dev, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	first, err := auth.LoadKeyring(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "DEV MODE") {
		t.Fatalf("dev mode did not say so: %q", logs.String())
	}
	second, err := auth.LoadKeyring(cfg)
	if err != nil || second.KeyIDs()[0] != first.KeyIDs()[0] {
		t.Fatalf("dev key not kept across restarts: %v", err)
	}
}

func TestStoreAndReseal(t *testing.T) {
	rdb := newRedis(t)
	prefix := testPrefix(t, rdb)
	ctx := context.Background()
	old := newStore(t, rdb, prefix, testKeyring(t, keyA), nil, nil)
	cred := auth.Credential{AccessToken: "pit-very-secret-access-0001"}
	for _, id := range []string{"one", "two"} {
		if err := old.Put(ctx, auth.Connection{ID: id, App: "ghl", Kind: auth.KindPrivate, LocationID: "loc1"}, cred); err != nil {
			t.Fatal(err)
		}
	}
	rotated := newStore(t, rdb, prefix, testKeyring(t, keyB, keyA), nil, nil)
	if r, err := rotated.Resolve(ctx, "one"); err != nil || r.Cred.AccessToken != cred.AccessToken {
		t.Fatalf("resolve after rotation: %v", err)
	}
	n, err := rotated.Reseal(ctx)
	if err != nil || n != 2 {
		t.Fatalf("reseal: %d %v", n, err)
	}
	if n, _ := rotated.Reseal(ctx); n != 0 {
		t.Fatalf("second reseal rewrote %d", n)
	}
	newOnly := newStore(t, rdb, prefix, testKeyring(t, keyB), nil, nil)
	if r, err := newOnly.Resolve(ctx, "two"); err != nil || r.Cred.AccessToken != cred.AccessToken {
		t.Fatalf("resolve with the new key alone: %v", err)
	}
	if _, err := old.Resolve(ctx, "two"); !errors.Is(err, auth.ErrSealed) {
		t.Fatalf("old key alone after reseal: %v", err)
	}
	list, err := newOnly.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "one" {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := newOnly.SetStatus(ctx, "one", auth.StatusPaused, "holiday"); err != nil {
		t.Fatal(err)
	}
	if _, err := newOnly.Resolve(ctx, "one"); !errors.Is(err, auth.ErrPaused) {
		t.Fatalf("paused: %v", err)
	}
	if _, err := newOnly.Resolve(ctx, "nobody"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	scanForSecrets(t, rdb, []string{cred.AccessToken})
}

// installEnv is a simulator, a store and an HTTP server with the install
// handler, whose callback the simulator's authorize page redirects to.
type installEnv struct {
	*simEnv
	store  *auth.Store
	app    *auth.OAuthApp
	ghlapp *httptest.Server
	logs   *syncBuffer
	rdb    interface{ Close() error }
}

func newInstallEnv(t *testing.T) (*installEnv, func(mutate ...func(*auth.StoreConfig)) *auth.Store) {
	rdb := newRedis(t)
	prefix := testPrefix(t, rdb)
	e := &installEnv{simEnv: newSim(t), logs: &syncBuffer{}}
	mux := http.NewServeMux()
	e.ghlapp = httptest.NewServer(mux)
	t.Cleanup(e.ghlapp.Close)
	e.app = e.oauthApp(t, e.ghlapp.URL+"/oauth/callback")
	keys := testKeyring(t, keyA)
	mk := func(mutate ...func(*auth.StoreConfig)) *auth.Store {
		return newStore(t, rdb, prefix, keys, e.app, e.logs, mutate...)
	}
	e.store = mk()
	mux.Handle("/oauth/", e.store.InstallHandler())
	return e, mk
}

func (e *installEnv) transport() *transport.Transport {
	return transport.New(transport.Config{Catalog: e.cat, Connections: e.store, BaseURL: e.http.URL,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

func TestOAuthInstall(t *testing.T) {
	e, mk := newInstallEnv(t)
	ctx := context.Background()
	e.srv.AddLocation("loc-install")
	c := e.srv.CreateContact("loc-install", map[string]any{"firstName": "Ada"})

	// The whole flow through a browser: start, authorize page, callback.
	resp, err := http.Get(e.ghlapp.URL + "/oauth/start?app=ghl&name=acme&scopes=contacts.readonly,contacts.write")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("install flow ended with %d", resp.StatusCode)
	}
	conn, err := e.store.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if conn.Kind != auth.KindOAuth || conn.LocationID != "loc-install" || conn.CompanyID == "" ||
		strings.Join(conn.Scopes, " ") != "contacts.readonly contacts.write" || conn.ExpiresAt.IsZero() {
		t.Fatalf("stored connection: %+v", conn)
	}
	tr := e.transport()
	body, err := tr.Call(ctx, "acme", e.cat.MustOp("ghl.contacts.get"), map[string]any{"contactId": c["id"]})
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(body, "contact.firstName").String() != "Ada" {
		t.Fatalf("call after install: %s", body)
	}
	// The connection's location fills a GHL call's locationId when left out.
	if _, err := tr.Call(ctx, "acme", e.cat.MustOp("ghl.contacts.list"), map[string]any{}); err != nil {
		t.Fatal(err)
	}

	// State checks: tampered, reused, expired.
	authorize := func() (state, code string) {
		u, err := e.store.StartInstall(ctx, auth.InstallRequest{App: "ghl", Name: "second", Scopes: []string{"contacts.readonly"}})
		if err != nil {
			t.Fatal(err)
		}
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || back.Query().Get("code") == "" {
			t.Fatalf("authorize page: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return back.Query().Get("state"), back.Query().Get("code")
	}
	state, code := authorize()
	if _, err := e.store.FinishInstall(ctx, state+"x", code); !errors.Is(err, auth.ErrBadState) {
		t.Fatalf("tampered state: %v", err)
	}
	if _, err := e.store.FinishInstall(ctx, state, code); err != nil {
		t.Fatalf("good state: %v", err)
	}
	if _, err := e.store.FinishInstall(ctx, state, code); !errors.Is(err, auth.ErrBadState) {
		t.Fatalf("reused state: %v", err)
	}
	state, code = authorize()
	later := mk(func(c *auth.StoreConfig) { c.Now = func() time.Time { return time.Now().Add(11 * time.Minute) } })
	if _, err := later.FinishInstall(ctx, state, code); !errors.Is(err, auth.ErrBadState) {
		t.Fatalf("expired state: %v", err)
	}
	// Over HTTP, a bad state is a 400 and stores nothing.
	resp, err = http.Get(e.ghlapp.URL + "/oauth/callback?state=forged&code=" + url.QueryEscape(code))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged callback: %d", resp.StatusCode)
	}
	list, _ := e.store.List(ctx)
	if len(list) != 2 {
		t.Fatalf("connections after the state checks: %v", list)
	}
	_, issued := e.log.snapshot()
	if len(issued) < 2 {
		t.Fatalf("tokens seen: %d", len(issued))
	}
	scanForSecrets(t, newRedis(t), issued)
	assertNoSecretsIn(t, "logs", e.logs.String(), issued)
}

func TestAgencyInstallAndLocationTokens(t *testing.T) {
	e, _ := newInstallEnv(t)
	ctx := context.Background()
	for _, l := range []string{"loc-a", "loc-b"} {
		e.srv.AddLocation(l)
	}
	c := e.srv.CreateContact("loc-b", map[string]any{"firstName": "Grace"})
	u, err := e.store.StartInstall(ctx, auth.InstallRequest{App: "ghl", Name: "agency", Agency: true,
		Locations: []string{"*"}, Scopes: []string{"oauth.write", "oauth.readonly", "contacts.readonly"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("agency install: %d", resp.StatusCode)
	}
	ag, err := e.store.Get(ctx, "agency")
	if err != nil || ag.UserType != "Company" || ag.LocationID != "" {
		t.Fatalf("agency connection: %+v %v", ag, err)
	}
	loc, err := e.store.Get(ctx, "agency-loc-b")
	if err != nil || loc.Parent != "agency" || loc.LocationID != "loc-b" {
		t.Fatalf("location connection: %+v %v", loc, err)
	}
	tr := e.transport()
	get := map[string]any{"contactId": c["id"]}
	if _, err := tr.Call(ctx, "agency-loc-b", e.cat.MustOp("ghl.contacts.get"), get); err != nil {
		t.Fatal(err)
	}
	// The location token is revoked: one 401, a new exchange through the
	// agency connection, and the call succeeds.
	r, err := e.store.Resolve(ctx, "agency-loc-b")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.RevokeToken(r.Cred.AccessToken)
	before := e.log.exchanges
	if _, err := tr.Call(ctx, "agency-loc-b", e.cat.MustOp("ghl.contacts.get"), get); err != nil {
		t.Fatalf("after revoking the location token: %v", err)
	}
	if e.log.exchanges != before+1 {
		t.Fatalf("exchanges: %d, want %d", e.log.exchanges, before+1)
	}
	_, issued := e.log.snapshot()
	scanForSecrets(t, newRedis(t), issued)
	assertNoSecretsIn(t, "logs", e.logs.String(), issued)
}

func TestRefusedRefreshNeedsReauth(t *testing.T) {
	e, _ := newInstallEnv(t)
	ctx := context.Background()
	tok := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-x"})
	e.srv.RevokeToken(tok.AccessToken)
	cred := auth.Credential{AccessToken: tok.AccessToken, RefreshToken: "sim_rt_not_a_real_one", ExpiresAt: tok.ExpiresAt}
	if err := e.store.Put(ctx, auth.Connection{ID: "x", App: "ghl", Kind: auth.KindOAuth, LocationID: "loc-x", BaseURL: e.http.URL}, cred); err != nil {
		t.Fatal(err)
	}
	_, err := e.transport().Call(ctx, "x", e.cat.MustOp("ghl.contacts.list"), map[string]any{"locationId": "loc-x"})
	if !errors.Is(err, transport.ErrUnauthorized) || !errors.Is(err, auth.ErrNeedsReauth) {
		t.Fatalf("call with a refused refresh: %v", err)
	}
	c, _ := e.store.Get(ctx, "x")
	if c.Status != auth.StatusNeedsReauth || c.Reason == "" {
		t.Fatalf("status: %+v", c)
	}
	refreshes, _ := e.log.snapshot()
	if _, err := e.store.Resolve(ctx, "x"); !errors.Is(err, auth.ErrNeedsReauth) {
		t.Fatalf("resolve after: %v", err)
	}
	if r2, _ := e.log.snapshot(); len(r2) != len(refreshes) {
		t.Fatal("a connection needing re-auth tried to refresh again")
	}
	assertNoSecretsIn(t, "error", err.Error(), []string{tok.AccessToken, cred.RefreshToken})
}

func TestRequiredScopes(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	recipes := []*catalog.Recipe{{
		Trigger: catalog.RecipeTrigger{Op: "ghl.contacts.list", Connection: "acme"},
		Steps: []catalog.Step{{Op: "ghl.contacts.tasks.create", Connection: "acme"},
			{Op: "referrizer.contacts.upsert", Connection: "rz"}},
	}}
	got := auth.RequiredScopes(cat, recipes, "acme")
	if strings.Join(got, " ") != "contacts.readonly contacts.write" {
		t.Fatalf("scopes: %v", got)
	}
	c := &auth.Connection{Scopes: []string{"contacts.readonly"}}
	if m := auth.MissingScopes(c, got); len(m) != 1 || m[0] != "contacts.write" {
		t.Fatalf("missing: %v", m)
	}
}

// Both connection sources serve the transport.
var (
	_ transport.Resolver = (*auth.Store)(nil)
	_ transport.Resolver = (*auth.Static)(nil)
)

// A refused token ghlflow cannot renew marks the connection for re-auth.
func TestRevokedPrivateTokenNeedsReauth(t *testing.T) {
	e, _ := newInstallEnv(t)
	ctx := context.Background()
	tok := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-p", Private: true})
	if err := e.store.Put(ctx, auth.Connection{ID: "pit", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc-p"},
		auth.Credential{AccessToken: tok.AccessToken}); err != nil {
		t.Fatal(err)
	}
	tr := e.transport()
	op := e.cat.MustOp("ghl.contacts.list")
	if _, err := tr.Call(ctx, "pit", op, nil); err != nil {
		t.Fatal(err)
	}
	e.srv.RevokeToken(tok.AccessToken)
	if _, err := tr.Call(ctx, "pit", op, nil); !errors.Is(err, transport.ErrUnauthorized) {
		t.Fatalf("revoked: %v", err)
	}
	if c, _ := e.store.Get(ctx, "pit"); c.Status != auth.StatusNeedsReauth {
		t.Fatalf("status after a refused private token: %+v", c)
	}
	// A new token from the user puts it back in service.
	fresh := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-p", Private: true})
	if err := e.store.Put(ctx, auth.Connection{ID: "pit", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc-p"},
		auth.Credential{AccessToken: fresh.AccessToken}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Call(ctx, "pit", op, nil); err != nil {
		t.Fatal(err)
	}
}

// When refreshing ahead of expiry fails for a passing reason, the token
// that still works is used.
func TestRefreshAheadFailureKeepsWorkingToken(t *testing.T) {
	e, mk := newInstallEnv(t)
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	app := *e.app
	app.TokenURL = down.URL + "/oauth/token"
	store := mk(func(c *auth.StoreConfig) { c.OAuth = map[string]*auth.OAuthApp{"ghl": &app} })
	tok := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-f"})
	cred := auth.Credential{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: time.Now().Add(time.Minute)}
	if err := store.Put(ctx, auth.Connection{ID: "f", App: "ghl", Kind: auth.KindOAuth, LocationID: "loc-f"}, cred); err != nil {
		t.Fatal(err)
	}
	r, err := store.Resolve(ctx, "f")
	if err != nil || r.Cred.AccessToken != tok.AccessToken {
		t.Fatalf("resolve with the token endpoint down: %v", err)
	}
	if c, _ := store.Get(ctx, "f"); c.Status != auth.StatusOK {
		t.Fatalf("status: %+v", c)
	}
}

func TestMultiSource(t *testing.T) {
	static, err := auth.NewStatic(auth.StaticEntry{ID: "file", App: "ghl", Token: "static-token-000"})
	if err != nil {
		t.Fatal(err)
	}
	rdb := newRedis(t)
	store := newStore(t, rdb, testPrefix(t, rdb), testKeyring(t, keyA), nil, nil)
	ctx := context.Background()
	if err := store.Put(ctx, auth.Connection{ID: "stored", App: "ghl", Kind: auth.KindPrivate}, auth.Credential{AccessToken: "stored-token-000"}); err != nil {
		t.Fatal(err)
	}
	m := auth.Multi{static, store}
	for id, want := range map[string]string{"file": "static-token-000", "stored": "stored-token-000"} {
		r, err := m.Resolve(ctx, id)
		if err != nil || r.Cred.AccessToken != want {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if _, err := m.Resolve(ctx, "none"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := m.Renew(ctx, "file", auth.Credential{}); !errors.Is(err, auth.ErrNoRefresh) {
		t.Fatalf("renew static: %v", err)
	}
}
