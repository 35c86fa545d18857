package auth_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func newRedis(t testing.TB) *redis.Client { return redistest.Client(t) }

// testPrefix returns a key prefix of its own for one test and removes its
// keys at the end.
func testPrefix(t testing.TB, rdb *redis.Client) string { return redistest.Prefix(t, rdb) }

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tokenLog wraps the simulator and records what reaches its token
// endpoints: every refresh token sent and every token handed out.
type tokenLog struct {
	next http.Handler

	mu        sync.Mutex
	refreshes []string // refresh tokens sent with grant_type=refresh_token
	exchanges int      // POST /oauth/locationToken
	codes     int      // grant_type=authorization_code
	issued    []string // access and refresh tokens in answers
}

func (l *tokenLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth/token" && r.URL.Path != "/oauth/locationToken" {
		l.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	l.mu.Lock()
	switch {
	case r.URL.Path == "/oauth/locationToken":
		l.exchanges++
	case form.Get("grant_type") == "refresh_token":
		l.refreshes = append(l.refreshes, form.Get("refresh_token"))
	case form.Get("grant_type") == "authorization_code":
		l.codes++
	}
	for _, f := range []string{`"access_token":"`, `"refresh_token":"`} {
		s := rec.Body.String()
		if i := strings.Index(s, f); i >= 0 {
			rest := s[i+len(f):]
			if j := strings.IndexByte(rest, '"'); j > 0 {
				l.issued = append(l.issued, rest[:j])
			}
		}
	}
	l.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (l *tokenLog) snapshot() (refreshes []string, issued []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refreshes...), append([]string(nil), l.issued...)
}

// simEnv is a simulator over HTTP behind a tokenLog.
type simEnv struct {
	cat  *catalog.Catalog
	srv  *sim.Server
	log  *tokenLog
	http *httptest.Server
}

func newSim(t testing.TB) *simEnv {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{})
	e := &simEnv{cat: cat, srv: srv, log: &tokenLog{next: srv}}
	e.http = httptest.NewServer(e.log)
	t.Cleanup(e.http.Close)
	return e
}

func (e *simEnv) oauthApp(t testing.TB, redirect string) *auth.OAuthApp {
	t.Helper()
	a, err := auth.NewOAuthApp(e.cat.App("ghl"), e.http.URL, "sim-client", "sim-secret", redirect)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testKeyring(t testing.TB, keys ...string) *auth.Keyring {
	t.Helper()
	var raw [][]byte
	for _, k := range keys {
		b, err := auth.ParseKeys(k)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	k, err := auth.NewKeyring(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newStore(t testing.TB, rdb *redis.Client, prefix string, keys *auth.Keyring, app *auth.OAuthApp, logs io.Writer, mutate ...func(*auth.StoreConfig)) *auth.Store {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	cfg := auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: keys, OAuth: map[string]*auth.OAuthApp{"ghl": app},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := auth.NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Location token exchanges go through a transport, as in `ghlflow run`.
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	s.UseExchanger(transport.New(transport.Config{Catalog: cat, Connections: s, Logger: cfg.Logger}))
	return s
}

// scanForSecrets reads every key and value of this package's Redis DB and
// fails if one holds any of secrets in plain text.
func scanForSecrets(t *testing.T, rdb *redis.Client, secrets []string) int {
	t.Helper()
	ctx := context.Background()
	var texts []string
	n := 0
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		n++
		texts = append(texts, key)
		switch rdb.Type(ctx, key).Val() {
		case "string":
			texts = append(texts, rdb.Get(ctx, key).Val())
		case "hash":
			for k, v := range rdb.HGetAll(ctx, key).Val() {
				texts = append(texts, k, v)
			}
		case "set":
			texts = append(texts, rdb.SMembers(ctx, key).Val()...)
		case "list":
			texts = append(texts, rdb.LRange(ctx, key, 0, -1).Val()...)
		case "zset":
			texts = append(texts, rdb.ZRange(ctx, key, 0, -1).Val()...)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(texts, "\n")
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			t.Fatalf("plaintext secret %.10s... found in Redis", s)
		}
	}
	return n
}

func assertNoSecretsIn(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Fatalf("secret %.10s... found in %s", s, what)
		}
	}
}
