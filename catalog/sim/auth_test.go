package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (e *env) rawGet(path string, header map[string]string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	st, b := e.send(req)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return st, m
}

func TestAuthFailures(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, sim.Config{Now: clk.now})
	cid := e.srv.CreateContact(e.loc, map[string]any{"firstName": "A"})["id"].(string)
	other := "locBBBBBBBBBBBBBBBBB"
	e.srv.AddLocation(other)
	otherTok := e.srv.IssueToken(sim.TokenSpec{LocationID: other})
	noScope := e.srv.IssueToken(sim.TokenSpec{LocationID: e.loc, Scopes: []string{"contacts.write"}})
	shortLived := e.srv.IssueToken(sim.TokenSpec{LocationID: e.loc, TTL: time.Minute})
	agency := e.srv.IssueToken(sim.TokenSpec{CompanyID: e.tok.CompanyID})
	revoked := e.srv.IssueToken(sim.TokenSpec{LocationID: e.loc})
	e.srv.RevokeToken(revoked.AccessToken)
	clk.add(2 * time.Minute)

	path := "/contacts/" + cid
	listPath := "/contacts/?locationId=" + e.loc
	v := "2021-07-28"
	tests := []struct {
		name   string
		path   string
		header map[string]string
		status int
		msg    string
	}{
		{"ok", path, map[string]string{"Authorization": e.tok.Authorization(), "Version": v}, 200, ""},
		{"missing token", path, map[string]string{"Version": v}, 401, "Invalid JWT"},
		{"unknown token", path, map[string]string{"Authorization": "Bearer nope", "Version": v}, 401, "Invalid JWT"},
		{"missing version", path, map[string]string{"Authorization": e.tok.Authorization()}, 400, "Version header was not found"},
		{"expired", path, map[string]string{"Authorization": shortLived.Authorization(), "Version": v}, 401, "Invalid token: access token is invalid"},
		{"revoked", path, map[string]string{"Authorization": revoked.Authorization(), "Version": v}, 401, "Invalid JWT"},
		{"missing scope", path, map[string]string{"Authorization": noScope.Authorization(), "Version": v}, 401, "The token is not authorized for this scope."},
		{"other location's record", path, map[string]string{"Authorization": otherTok.Authorization(), "Version": v}, 404, ""},
		{"other location named", listPath, map[string]string{"Authorization": otherTok.Authorization(), "Version": v}, 403, "The token does not have access to this location."},
		{"agency token on a location route", path, map[string]string{"Authorization": agency.Authorization(), "Version": v}, 401, "This AuthClass is not yet supported by the IAM Service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			st, body := e.rawGet(tc.path, tc.header)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %v", st, tc.status, body)
			}
			if tc.msg != "" && body["message"] != tc.msg {
				t.Fatalf("message %v, want %q", body["message"], tc.msg)
			}
			if st >= 400 && body["statusCode"] != float64(st) {
				t.Fatalf("error body without statusCode: %v", body)
			}
		})
	}
}

func TestReferralAppAuth(t *testing.T) {
	e := newEnv(t, sim.Config{})
	rr := e.srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: e.loc})
	rz := e.srv.IssueToken(sim.TokenSpec{App: "referrizer", LocationID: e.loc})
	if st, _ := e.do(rr, "referralrock.members.new", map[string]any{"count": 1}); st != 200 {
		t.Fatalf("basic auth: %d", st)
	}
	bad := rr
	bad.Password = "wrong"
	if st, _ := e.do(bad, "referralrock.members.new", nil); st != 401 {
		t.Fatalf("wrong key: %d", st)
	}
	if st, _ := e.do(rz, "referrizer.contacts.new", nil); st != 200 {
		t.Fatalf("referrizer token: %d", st)
	}
	if st, _ := e.do(e.tok, "referrizer.contacts.new", nil); st != 401 {
		t.Fatalf("GHL token on referrizer: %d", st)
	}
}

// oauthInstall runs the authorize page and the code exchange.
func oauthInstall(t *testing.T, e *env, extra string) map[string]any {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.ts.URL + "/oauth/chooselocation?response_type=code&client_id=sim-client&state=s1" +
		"&redirect_uri=" + url.QueryEscape("http://127.0.0.1:1/callback") + "&scope=contacts.readonly+oauth.write" + extra)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("state") != "s1" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	st, tok := tokenCall(t, e, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"client_id": {"sim-client"}, "client_secret": {"sim-secret"}, "redirect_uri": {"http://127.0.0.1:1/callback"}})
	if st != 200 {
		t.Fatalf("code exchange: %d %v", st, tok)
	}
	return tok
}

func tokenCall(t *testing.T, e *env, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	st, b := e.send(req)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return st, m
}

func TestOAuthRefreshRotation(t *testing.T) {
	e := newEnv(t, sim.Config{})
	tok := oauthInstall(t, e, "&location_id="+e.loc)
	if tok["locationId"] != e.loc || tok["userType"] != "Location" || tok["expires_in"].(float64) < 86000 {
		t.Fatalf("token response: %v", tok)
	}
	refresh := func(rt string) (int, map[string]any) {
		return tokenCall(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"client_id": {"sim-client"}, "client_secret": {"sim-secret"}, "user_type": {"Location"}})
	}
	old := tok["refresh_token"].(string)
	st, next := refresh(old)
	if st != 200 || next["refresh_token"] == old || next["access_token"] == tok["access_token"] {
		t.Fatalf("refresh: %d %v", st, next)
	}
	if st, body := refresh(old); st != http.StatusBadRequest || body["statusCode"] != float64(400) {
		t.Fatalf("reused refresh token: %d %v", st, body)
	}
	if st, _ := refresh(next["refresh_token"].(string)); st != 200 {
		t.Fatalf("new refresh token refused: %d", st)
	}
	st, body := tokenCall(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"},
		"client_id": {"sim-client"}, "client_secret": {"bad"}})
	if st != http.StatusUnauthorized {
		t.Fatalf("bad client secret: %d %v", st, body)
	}
	// The token endpoint's calls are in the request log (the install's code
	// exchange and four refreshes), without their secret bodies.
	if n := e.srv.RequestCount("oauth.token", ""); n != 5 {
		t.Fatalf("oauth.token requests logged: %d, want 5", n)
	}
	var statuses []int
	for _, r := range e.srv.Requests() {
		if r.Op == "oauth.token" {
			statuses = append(statuses, r.Status)
			if len(r.Body) > 0 {
				t.Fatalf("a token request's body was logged")
			}
		}
	}
	if fmt.Sprint(statuses) != "[200 200 400 200 401]" {
		t.Fatalf("oauth.token statuses %v", statuses)
	}
	// The new access token works, with the scopes asked for.
	at := sim.Token{AccessToken: next["access_token"].(string)}
	cid := e.srv.CreateContact(e.loc, nil)["id"].(string)
	if st, _ := e.do(at, "ghl.contacts.get", map[string]any{"contactId": cid}); st != 200 {
		t.Fatalf("refreshed token: %d", st)
	}
	if st, _ := e.do(at, "ghl.contacts.create", map[string]any{"locationId": e.loc}); st != 401 {
		t.Fatalf("token used outside its scopes: %d", st)
	}
}

func TestLocationTokenFromAgency(t *testing.T) {
	e := newEnv(t, sim.Config{})
	tok := oauthInstall(t, e, "&user_type=Company")
	if tok["userType"] != "Company" {
		t.Fatalf("agency install: %v", tok)
	}
	form := url.Values{"companyId": {tok["companyId"].(string)}, "locationId": {e.loc}}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, e.ts.URL+"/oauth/locationToken", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Version", "2021-07-28")
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	st, b := e.send(req)
	var lt map[string]any
	_ = json.Unmarshal(b, &lt)
	if st != 200 || lt["locationId"] != e.loc || lt["refresh_token"] != nil {
		t.Fatalf("location token: %d %s", st, b)
	}
	cid := e.srv.CreateContact(e.loc, nil)["id"].(string)
	if st, _ := e.do(sim.Token{AccessToken: lt["access_token"].(string)}, "ghl.contacts.get", map[string]any{"contactId": cid}); st != 200 {
		t.Fatalf("minted location token: %d", st)
	}
	// A location token cannot mint location tokens.
	req2, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/oauth/locationToken", strings.NewReader(form.Encode()))
	req2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req2.Header.Set("Version", "2021-07-28")
	req2.Header.Set("Authorization", e.tok.Authorization())
	if st, _ := e.send(req2); st != 401 {
		t.Fatalf("location token on locationToken: %d", st)
	}
}

func TestCatalogRequestHasVersion(t *testing.T) {
	// Requests built by the catalog carry the Version header the simulator
	// requires; checked here so a catalog change cannot silently break it.
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range cat.Find(catalog.Filter{App: "ghl"}) {
		if op.Version == "" {
			t.Errorf("%s has no version", op.ID)
		}
	}
}
