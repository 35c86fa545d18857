package api_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/api"
)

// TestTenantConnectionsMustExist: creating or patching a tenant with a
// connection that is neither stored nor static answers 422 naming the
// field, the connection, the known ones and how to fix it, and changes
// nothing; stored and static connections are accepted, and "" unbinds a
// role.
func TestTenantConnectionsMustExist(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "acme"}, 201, nil)
	f.must(f.admin, "POST", "/api/v1/tenants/acme/connections", map[string]any{"role": "ghl", "app": "ghl", "kind": "private",
		"token": "t", "location_id": "loc-static"}, 201, nil) // stored as acme-ghl
	steps := []struct {
		name, method, path string
		body               map[string]any
		code               int
		field              string   // of a 422
		says               []string // in a 422's message
		conns              string   // the tenant's connections after a success
	}{
		{"create with a static connection", "POST", "/tenants", map[string]any{"id": "t1", "connections": map[string]string{"ghl": "static-ghl"}},
			201, "", nil, "ghl=static-ghl"},
		{"create with a stored connection", "POST", "/tenants", map[string]any{"id": "t2", "connections": map[string]string{"ghl": "acme-ghl"}},
			201, "", nil, "ghl=acme-ghl"},
		{"create with an unknown connection", "POST", "/tenants", map[string]any{"id": "t3",
			"connections": map[string]string{"ghl": "static-ghl", "referralrock": "rr-typo"}}, 422, "connections.referralrock",
			[]string{`unknown connection "rr-typo" (role referralrock)`, "known: acme-ghl, static-ghl",
				"POST /api/v1/tenants/t3/connections", "connections:install", "connections file"}, ""},
		{"patch in a stored connection", "PATCH", "/tenants/t1", map[string]any{"connections": map[string]string{"agency": "acme-ghl"}},
			200, "", nil, "agency=acme-ghl,ghl=static-ghl"},
		{"patch in an unknown connection", "PATCH", "/tenants/t1", map[string]any{"connections": map[string]string{"ghl": "ghl-typo"}},
			422, "connections.ghl", []string{`unknown connection "ghl-typo" (role ghl)`}, ""},
		{"patch a role away", "PATCH", "/tenants/t1", map[string]any{"connections": map[string]string{"agency": ""}},
			200, "", nil, "ghl=static-ghl"},
	}
	for _, s := range steps {
		code, b := f.do(f.admin, s.method, "/api/v1"+s.path, s.body)
		if code != s.code {
			t.Fatalf("%s: %d, want %d: %s", s.name, code, s.code, b)
		}
		if code == 422 {
			var eb api.ErrorBody
			if err := json.Unmarshal(b, &eb); err != nil {
				t.Fatal(err)
			}
			if eb.Error.Code != "unknown_connection" || eb.Error.Field != s.field {
				t.Errorf("%s: %+v, want field %s", s.name, eb.Error, s.field)
			}
			for _, w := range s.says {
				if !strings.Contains(eb.Error.Message, w) {
					t.Errorf("%s: message %q does not say %q", s.name, eb.Error.Message, w)
				}
			}
			continue
		}
		var tv api.TenantView
		if err := json.Unmarshal(b, &tv); err != nil {
			t.Fatal(err)
		}
		if got := pairs(tv.Connections); got != s.conns {
			t.Errorf("%s: connections %s, want %s", s.name, got, s.conns)
		}
	}
	// Refusals changed nothing.
	f.must(f.admin, "GET", "/api/v1/tenants/t3", nil, 404, nil)
	var tv api.TenantView
	f.must(f.admin, "GET", "/api/v1/tenants/t1", nil, 200, &tv)
	if got := pairs(tv.Connections); got != "ghl=static-ghl" {
		t.Fatalf("t1 connections %s", got)
	}
	// A static connection lists with its metadata, not as missing.
	var conns api.List[api.ConnectionView]
	f.must(f.admin, "GET", "/api/v1/tenants/t1/connections", nil, 200, &conns)
	if len(conns.Items) != 1 || conns.Items[0].Status != api.ConnectionStatic || conns.Items[0].LocationID != "loc-static" ||
		conns.Items[0].App != "ghl" {
		t.Errorf("t1's static connection: %+v", conns.Items)
	}
}

func pairs(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// TestStaticConnectionPauseShows: a tenant on a connection of the static
// file lists it as static while it is in force; once the engine pauses it
// (a refused token), the connection and the tenant's subscriptions show
// the pause and its reason instead of looking active.
func TestStaticConnectionPauseShows(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	ctx := context.Background()
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "st", "connections": map[string]string{"ghl": "static-ghl"}}, 201, nil)
	if _, err := f.eng.RefreshTenants(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(when, connStatus, subStatus string) {
		t.Helper()
		var conns listOf[api.ConnectionView]
		f.must(f.admin, "GET", "/api/v1/tenants/st/connections", nil, 200, &conns)
		var subs listOf[api.SubscriptionView]
		f.must(f.admin, "GET", "/api/v1/subscriptions?tenant=st", nil, 200, &subs)
		if len(conns.Items) != 1 || conns.Items[0].Status != connStatus || len(subs.Items) != 1 ||
			subs.Items[0].ConnectionStatus != connStatus || subs.Items[0].Status != subStatus {
			t.Fatalf("%s: connections %+v, subscriptions %+v", when, conns.Items, subs.Items)
		}
	}
	check("in force", api.ConnectionStatic, api.SubActive)
	if err := f.eng.Pauses().PauseConnection(ctx, "static-ghl", "HTTP 401: Invalid JWT"); err != nil {
		t.Fatal(err)
	}
	check("paused by the engine", "needs_reauth", api.SubConnectionPaused)
	var conns listOf[api.ConnectionView]
	f.must(f.admin, "GET", "/api/v1/tenants/st/connections", nil, 200, &conns)
	if !strings.Contains(conns.Items[0].Reason, "Invalid JWT") {
		t.Errorf("reason: %q", conns.Items[0].Reason)
	}
}
