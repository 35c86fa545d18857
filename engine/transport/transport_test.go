package transport_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/policy"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/tidwall/gjson"
)

// env is a simulator over HTTP with static connections to it.
type env struct {
	cat     *catalog.Catalog
	srv     *sim.Server
	http    *httptest.Server
	conns   *auth.Static
	secrets []string
	logs    *syncBuffer
}

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

func newEnv(t testing.TB, cfg sim.Config) *env {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cat: cat, srv: sim.New(cat, cfg), logs: &syncBuffer{}}
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(e.http.Close)
	set := func(name, value string) {
		t.Setenv(name, value)
		e.secrets = append(e.secrets, value)
	}
	set("TRANSPORT_TEST_GHL_TOKEN", e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-acme", Private: true}).AccessToken)
	set("TRANSPORT_TEST_GHL_WRITE_TOKEN", e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-acme", Private: true,
		Scopes: []string{"contacts.write"}}).AccessToken)
	set("TRANSPORT_TEST_GHL_AGENCY_TOKEN", e.srv.IssueToken(sim.TokenSpec{Private: true}).AccessToken)
	revoked := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-acme", Private: true}).AccessToken
	e.srv.RevokeToken(revoked)
	set("TRANSPORT_TEST_GHL_REVOKED_TOKEN", revoked)
	rr := e.srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: "rr-account"})
	set("TRANSPORT_TEST_RR_USER", rr.Username)
	set("TRANSPORT_TEST_RR_PASS", rr.Password)
	set("TRANSPORT_TEST_RZ_TOKEN", e.srv.IssueToken(sim.TokenSpec{App: "referrizer", LocationID: "rz-account"}).AccessToken)
	if e.conns, err = auth.LoadStaticConnections("testdata/connections.yaml"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) transport(cfg transport.Config) *transport.Transport {
	cfg.Catalog = e.cat
	cfg.Connections = e.conns
	cfg.BaseURL = e.http.URL
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return transport.New(cfg)
}

func (e *env) assertNoSecrets(t testing.TB, texts ...string) {
	t.Helper()
	texts = append(texts, e.logs.String())
	for _, s := range e.secrets {
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Fatalf("secret %.8s... found in %q", s, text)
			}
		}
	}
}

func TestCallsEveryApp(t *testing.T) {
	e := newEnv(t, sim.Config{})
	tr := e.transport(transport.Config{})
	ctx := context.Background()
	c := e.srv.CreateContact("loc-acme", map[string]any{"firstName": "Ada", "email": "ada@example.com"})
	id := c["id"].(string)

	body, err := tr.Call(ctx, "acme", e.cat.MustOp("ghl.contacts.get"), map[string]any{"contactId": id})
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(body, "contact.firstName").String(); got != "Ada" {
		t.Fatalf("contact: %s", body)
	}
	body, err = tr.Call(ctx, "acme", e.cat.MustOp("ghl.contacts.create"), map[string]any{"locationId": "loc-acme",
		"firstName": "Grace", "email": "grace@example.com", "tags": []any{"referral"}})
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(body, "contact.id").String() == "" {
		t.Fatalf("create: %s", body)
	}
	if _, err := tr.Call(ctx, "rr", e.cat.MustOp("referralrock.members.new"), map[string]any{"count": 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Call(ctx, "rz", e.cat.MustOp("referrizer.contacts.new"), map[string]any{"perPage": 10}); err != nil {
		t.Fatal(err)
	}
	// Every GHL request carried the operation's Version (the simulator
	// refuses requests without one, so success shows it was sent).
	e.assertNoSecrets(t)
}

func TestErrorClassification(t *testing.T) {
	e := newEnv(t, sim.Config{Interval: time.Second})
	ctx := context.Background()
	contact := e.srv.CreateContact("loc-acme", map[string]any{"firstName": "Ada"})["id"].(string)
	get := map[string]any{"contactId": contact}
	type check func(error) bool
	is := func(target error) check { return func(err error) bool { return errors.Is(err, target) } }
	validation := func(msg string) check {
		return func(err error) bool {
			var ve *transport.ValidationError
			return errors.As(err, &ve) && strings.Contains(strings.Join(ve.Messages, " "), msg)
		}
	}
	rateLimited := func(daily bool) check {
		return func(err error) bool {
			var rl *transport.RateLimitedError
			return errors.As(err, &rl) && rl.Daily == daily && rl.RetryAfter > 0
		}
	}
	cases := []struct {
		name   string
		conn   string
		op     string
		input  map[string]any
		faults sim.Faults
		cfg    transport.Config
		want   check
		status int
		// action is what the error policy makes of the failure.
		action policy.Action
	}{
		{name: "not found", conn: "acme", op: "ghl.contacts.get", input: map[string]any{"contactId": "nope0000000000000000"},
			want: is(transport.ErrNotFound), status: 404, action: policy.Fail},
		{name: "scope missing", conn: "writer-only", op: "ghl.contacts.get", input: get,
			want: is(transport.ErrScopeMissing), status: 401, action: policy.Pause},
		{name: "revoked token, no refresh", conn: "revoked", op: "ghl.contacts.get", input: get,
			want: is(transport.ErrUnauthorized), status: 401, action: policy.Pause},
		{name: "agency token on a location operation", conn: "agency", op: "ghl.contacts.get", input: get,
			want: is(transport.ErrForbidden), status: 401, action: policy.Pause},
		{name: "other location", conn: "acme", op: "ghl.contacts.list", input: map[string]any{"locationId": "loc-other"},
			want: is(transport.ErrForbidden), status: 403, action: policy.Pause},
		{name: "validation 422", conn: "acme", op: "ghl.contacts.list", input: map[string]any{"locationId": "loc-acme", "limit": 500},
			want: validation("must not be greater than 100"), status: 422, action: policy.Fail},
		{name: "burst 429 once more than attempts", conn: "acme", op: "ghl.contacts.get", input: get,
			faults: sim.Faults{Burst429: 1}, cfg: transport.Config{Attempts: 1},
			want: rateLimited(false), status: 429, action: policy.Wait},
		{name: "server error", conn: "acme", op: "ghl.contacts.get", input: get,
			faults: sim.Faults{Error5xx: 1}, cfg: transport.Config{Attempts: 2, Backoff: time.Millisecond},
			want: is(transport.ErrTransient), action: policy.Retry},
		{name: "timeout", conn: "acme", op: "ghl.contacts.get", input: get,
			faults: sim.Faults{Timeout: 1, TimeoutAfter: 2 * time.Second}, cfg: transport.Config{Attempts: 1, Timeout: 100 * time.Millisecond},
			want: is(transport.ErrTransient), action: policy.Retry},
		{name: "connection reset", conn: "acme", op: "ghl.contacts.get", input: get,
			faults: sim.Faults{Reset: 1}, cfg: transport.Config{Attempts: 1},
			want: is(transport.ErrTransient), action: policy.Retry},
		{name: "response too large", conn: "acme", op: "ghl.contacts.get", input: get, cfg: transport.Config{MaxResponse: 20},
			want: is(transport.ErrTooLarge), action: policy.Fail},
		{name: "referral rock bad keys", conn: "rr-bad", op: "referralrock.members.new", input: map[string]any{"count": 1},
			want: is(transport.ErrUnauthorized), status: 401, action: policy.Pause},
		{name: "missing required input", conn: "acme", op: "ghl.contacts.get", input: map[string]any{},
			want: is(transport.ErrInput), action: policy.Fail},
		{name: "unknown connection", conn: "nobody", op: "ghl.contacts.get", input: get,
			want: is(transport.ErrConnection), action: policy.Fail},
		{name: "connection of another app", conn: "rz", op: "ghl.contacts.get", input: get,
			want: is(transport.ErrConnection), action: policy.Fail},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.srv.SetFaults(tc.faults)
			defer e.srv.SetFaults(sim.Faults{})
			tr := e.transport(tc.cfg)
			_, err := tr.Call(ctx, tc.conn, e.cat.MustOp(tc.op), tc.input)
			if err == nil {
				t.Fatal("call succeeded")
			}
			if !tc.want(err) {
				t.Fatalf("wrong class: %v", err)
			}
			if tc.status != 0 && transport.Status(err) != tc.status {
				t.Fatalf("status %d, want %d: %v", transport.Status(err), tc.status, err)
			}
			if got := policy.Decide(err).Action; got != tc.action {
				t.Fatalf("policy: %s, want %s: %v", got, tc.action, err)
			}
			e.assertNoSecrets(t, err.Error())
		})
	}
}

func TestDailyLimit(t *testing.T) {
	e := newEnv(t, sim.Config{Daily: 2})
	tr := e.transport(transport.Config{})
	ctx := context.Background()
	op := e.cat.MustOp("ghl.contacts.list")
	in := map[string]any{"locationId": "loc-acme"}
	for i := 0; i < 2; i++ {
		if _, err := tr.Call(ctx, "acme", op, in); err != nil {
			t.Fatal(err)
		}
	}
	_, err := tr.Call(ctx, "acme", op, in)
	var rl *transport.RateLimitedError
	if !errors.As(err, &rl) || !rl.Daily {
		t.Fatalf("want a daily rate limit, got %v", err)
	}
	if got := e.srv.TooManyRequests(); got != 1 {
		t.Fatalf("a daily 429 was retried: %d 429s", got)
	}
}

func TestBurst429WaitsAndRetries(t *testing.T) {
	e := newEnv(t, sim.Config{Interval: time.Second})
	e.srv.SetFaults(sim.Faults{Burst429: 2})
	tr := e.transport(transport.Config{})
	if _, err := tr.Call(context.Background(), "acme", e.cat.MustOp("ghl.contacts.list"),
		map[string]any{"locationId": "loc-acme"}); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.TooManyRequests(); got != 2 {
		t.Fatalf("429s sent: %d, want 2", got)
	}
}

func TestTransientRetriedForReadsOnly(t *testing.T) {
	e := newEnv(t, sim.Config{})
	var hits int
	var mu sync.Mutex
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		n := hits
		mu.Unlock()
		if n%2 == 1 {
			http.Error(w, `{"statusCode":502,"message":"Bad Gateway"}`, http.StatusBadGateway)
			return
		}
		e.srv.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	tr := transport.New(transport.Config{Catalog: e.cat, Connections: e.conns, BaseURL: flaky.URL, Backoff: time.Millisecond})
	ctx := context.Background()
	if _, err := tr.Call(ctx, "acme", e.cat.MustOp("ghl.contacts.list"), map[string]any{"locationId": "loc-acme"}); err != nil {
		t.Fatalf("a read after one 502: %v", err)
	}
	_, err := tr.Call(ctx, "acme", e.cat.MustOp("ghl.contacts.create"), map[string]any{"locationId": "loc-acme", "firstName": "X"})
	if !errors.Is(err, transport.ErrTransient) {
		t.Fatalf("a write after a 502: %v", err)
	}
	if hits != 3 {
		t.Fatalf("requests: %d, want 3 (the write is not retried)", hits)
	}
}

func TestStaticConnectionsFile(t *testing.T) {
	t.Setenv("TRANSPORT_TEST_GHL_TOKEN", "")
	if _, err := auth.LoadStaticConnections("testdata/connections.yaml"); err == nil ||
		!strings.Contains(err.Error(), "TRANSPORT_TEST_GHL_TOKEN") {
		t.Fatalf("missing token_env: %v", err)
	}
}

// TestExchangeLocationToken: GHL's agency-to-location token exchange is a
// call like any other: the agency connection's credential, the error
// classes, and a refusal marked for the connection store.
func TestExchangeLocationToken(t *testing.T) {
	e := newEnv(t, sim.Config{})
	tr := e.transport(transport.Config{Attempts: 1})
	ctx := context.Background()
	req := func(agency, loc string) auth.LocationTokenRequest {
		return auth.LocationTokenRequest{App: "ghl", Agency: agency, URL: e.http.URL + "/oauth/locationToken",
			Version: auth.DefaultLocationTokenVersion, CompanyID: "simCompany000000000", LocationID: loc}
	}
	body, err := tr.ExchangeLocationToken(ctx, req("agency", "loc-acme"))
	if err != nil || gjson.GetBytes(body, "access_token").String() == "" {
		t.Fatalf("exchange: %s, %v", body, err)
	}
	for _, tc := range []struct {
		name    string
		req     auth.LocationTokenRequest
		class   func(error) bool
		refused bool
	}{
		{name: "a location token", req: req("acme", "loc-acme"),
			class: func(err error) bool { return errors.Is(err, transport.ErrForbidden) }, refused: true},
		{name: "a location of another company", req: req("agency", "loc-nowhere"),
			class: func(err error) bool { var ve *transport.ValidationError; return errors.As(err, &ve) }, refused: true},
		{name: "an unknown agency connection", req: req("nobody", "loc-acme"),
			class: func(err error) bool { return errors.Is(err, transport.ErrConnection) }, refused: true},
		{name: "no answer", req: func() auth.LocationTokenRequest {
			r := req("agency", "loc-acme")
			r.URL = "http://127.0.0.1:1/oauth/locationToken"
			return r
		}(), class: func(err error) bool { return errors.Is(err, transport.ErrTransient) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.ExchangeLocationToken(ctx, tc.req)
			if err == nil || !tc.class(err) || errors.Is(err, auth.ErrGrantRefused) != tc.refused {
				t.Fatalf("exchange: %v", err)
			}
			e.assertNoSecrets(t, err.Error())
		})
	}
}
