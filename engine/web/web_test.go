package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/api"
)

func form(key, next string) *strings.Reader {
	return strings.NewReader(url.Values{"key": {key}, "next": {next}}.Encode())
}

var formHdr = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

// TestPages: pages need a login; the login sets an HttpOnly cookie; the
// operator sees every tenant, a subscription's polls and a run's steps;
// a tenant key sees only its tenant (another's run answers 404) and not
// /monitoring; a cookie alone does not change anything through the API.
func TestPages(t *testing.T) {
	s := newSite(t)
	c := &client{t: t, base: s.srv.URL}
	resp, _ := c.do("GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("/ without a key: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = c.do("GET", "/monitoring/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("/monitoring/ without a key: %d", resp.StatusCode)
	}
	resp, body := c.do("POST", "/login", form("ghf_wrong", "/"), formHdr)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("wrong key: %d", resp.StatusCode)
	}
	resp, _ = c.do("POST", "/login", form(s.operator, "https://evil.example/"), formHdr)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(c.jar) != 1 || !c.jar[0].HttpOnly || c.jar[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie: %+v", c.jar)
	}
	_, body = c.do("GET", "/", nil, nil)
	for _, want := range []string{"Tenant acme", "Tenant beta", "api-new-contact-note", "completed", "Monitoring", "ok"} {
		if !strings.Contains(body, want) {
			t.Fatalf("index lacks %q:\n%s", want, body)
		}
	}
	_, body = c.do("GET", "/subscriptions/"+s.acmeSub, nil, nil)
	for _, want := range []string{"Last polls", "Pause", "Resume", "Test trigger", "Replay", "seeded"} {
		if !strings.Contains(body, want) {
			t.Fatalf("subscription page lacks %q:\n%s", want, body)
		}
	}
	_, body = c.do("GET", "/runs/"+s.acmeRun, nil, nil)
	for _, want := range []string{"ghl.contacts.notes.create", "Input", "Output", "Welcome Grace from Tenant acme."} {
		if !strings.Contains(body, want) {
			t.Fatalf("run page lacks %q:\n%s", want, body)
		}
	}
	resp, body = c.do("GET", "/monitoring/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Asynq") {
		t.Fatalf("/monitoring/ as operator: %d", resp.StatusCode)
	}
	// The cookie alone changes nothing through the API; with the page's
	// header it does.
	resp, _ = c.do("POST", "/api/v1/subscriptions/"+s.acmeSub+"/pause", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pause with the cookie alone: %d", resp.StatusCode)
	}
	resp, _ = c.do("POST", "/api/v1/subscriptions/"+s.acmeSub+"/pause", nil, map[string]string{api.CSRFHeader: "1"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pause from the page: %d", resp.StatusCode)
	}

	tc := &client{t: t, base: s.srv.URL}
	tc.do("POST", "/login", form(s.acmeKey, "/"), formHdr)
	_, body = tc.do("GET", "/", nil, nil)
	if !strings.Contains(body, "Tenant acme") || strings.Contains(body, "beta") || strings.Contains(body, "Monitoring") {
		t.Fatalf("acme's index shows another tenant or monitoring:\n%s", body)
	}
	if resp, _ := tc.do("GET", "/runs/"+s.betaRun, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("beta's run with acme's key: %d", resp.StatusCode)
	}
	if resp, _ := tc.do("GET", "/subscriptions/"+s.betaSub, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("beta's subscription with acme's key: %d", resp.StatusCode)
	}
	if resp, _ := tc.do("GET", "/monitoring/", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("/monitoring/ with a tenant key: %d", resp.StatusCode)
	}
	for _, b := range []string{body} {
		if strings.Contains(b, s.token) {
			t.Fatal("a page carries a token")
		}
	}
	c.do("POST", "/logout", nil, nil)
}
