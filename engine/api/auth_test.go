package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/api"
	"github.com/ghlflow/ghlflow/engine/history"
)

// twoTenants makes tenants alpha and beta with a connection each, binds
// their subscriptions and records a run of beta's. It returns a key of
// alpha's, and beta's subscription, run and key ids.
func twoTenants(t *testing.T, f *fixture) (alphaKey, betaSub, betaRun, betaKeyID string) {
	t.Helper()
	for _, id := range []string{"alpha", "beta"} {
		f.sim.AddLocation("loc-" + id)
		tok := f.issue(sim.TokenSpec{LocationID: "loc-" + id, Private: true})
		f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": id, "name": "Tenant " + id}, 201, nil)
		f.must(f.admin, "POST", "/api/v1/tenants/"+id+"/connections", map[string]any{"role": "ghl", "app": "ghl", "kind": "private",
			"token": tok.AccessToken, "location_id": "loc-" + id}, 201, nil)
	}
	if _, err := f.eng.RefreshTenants(context.Background()); err != nil {
		t.Fatal(err)
	}
	var subs listOf[api.SubscriptionView]
	f.must(f.admin, "GET", "/api/v1/subscriptions?tenant=beta", nil, 200, &subs)
	if len(subs.Items) != 1 {
		t.Fatalf("beta's subscriptions: %+v", subs)
	}
	betaSub = subs.Items[0].ID
	err := f.eng.History.AddChain(context.Background(), "beta", betaSub, history.Chain{Time: time.Now(), Recipe: subs.Items[0].Recipe,
		ItemKey: "c1", Status: "completed", Steps: []history.Step{{Op: "ghl.contacts.notes.create", Status: "done"}}})
	if err != nil {
		t.Fatal(err)
	}
	var runs listOf[api.RunView]
	f.must(f.admin, "GET", "/api/v1/runs?subscription="+betaSub, nil, 200, &runs)
	var nk api.NewKey
	f.must(f.admin, "POST", "/api/v1/tenants/alpha/keys", map[string]any{"name": "alpha's"}, 201, &nk)
	var bk api.NewKey
	f.must(f.admin, "POST", "/api/v1/tenants/beta/keys", map[string]any{"name": "beta's"}, 201, &bk)
	return nk.Key, betaSub, runs.Items[0].ID, bk.ID
}

// TestEveryRouteNeedsAKeyAndHidesOtherTenants is built from the router's
// own route list: every route answers 401 without a key and with a wrong
// one, and with tenant alpha's key every object of tenant beta answers
// 404 (lists leave beta out).
func TestEveryRouteNeedsAKeyAndHidesOtherTenants(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	alphaKey, betaSub, betaRun, betaKeyID := twoTenants(t, f)
	fill := strings.NewReplacer("{role}", "ghl", "{key}", betaKeyID, "{name}", "api-new-contact-note")
	routes := f.api.Routes()
	if len(routes) < 25 {
		t.Fatalf("%d routes", len(routes))
	}
	for _, rt := range routes {
		path := rt.Path
		switch {
		case strings.HasPrefix(path, api.Base+"/tenants/{id}"):
			path = strings.Replace(path, "{id}", "beta", 1)
		case strings.HasPrefix(path, api.Base+"/subscriptions/{id}"):
			path = strings.Replace(path, "{id}", betaSub, 1)
		case strings.HasPrefix(path, api.Base+"/runs/{id}"):
			path = strings.Replace(path, "{id}", betaRun, 1)
		}
		path = fill.Replace(path)
		body := map[string]any{"item_key": "c1", "role": "ghl", "name": "x"}
		for _, key := range []string{"", "ghf_" + strings.Repeat("A", 43), alphaKey + "x", "Basic " + alphaKey} {
			if code, b := f.do(key, rt.Method, path, body); code != 401 {
				t.Errorf("%s %s with key %q: %d, want 401: %s", rt.Method, path, key, code, b)
			}
		}
		code, b := f.do(alphaKey, rt.Method, path, body)
		switch {
		case strings.Contains(rt.Path, "{id}"):
			if code != 404 {
				t.Errorf("%s %s with alpha's key: %d, want 404: %s", rt.Method, path, code, b)
			}
		case rt.Method == "GET":
			if code != 200 || strings.Contains(string(b), "beta") || strings.Contains(string(b), betaSub) {
				t.Errorf("%s %s with alpha's key: %d, shows beta: %s", rt.Method, path, code, b)
			}
		case !rt.Tenant:
			if code != 403 {
				t.Errorf("%s %s with alpha's key: %d, want 403: %s", rt.Method, path, code, b)
			}
		}
	}
	// Beta's objects are all still there.
	f.must(f.admin, "GET", "/api/v1/subscriptions/"+betaSub, nil, 200, nil)
	f.must(f.admin, "GET", "/api/v1/runs/"+betaRun, nil, 200, nil)
}

// TestTenantKeys: a tenant key reaches its tenant; revoked, or its tenant
// deleted, it answers 401; keys are listed without the key itself.
func TestTenantKeys(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	alphaKey, _, _, _ := twoTenants(t, f)
	var ten api.TenantView
	f.must(alphaKey, "GET", "/api/v1/tenants/alpha", nil, 200, &ten)
	if ten.Name != "Tenant alpha" || ten.Subscriptions != 1 || ten.Connections["ghl"] != "alpha-ghl" {
		t.Fatalf("alpha: %+v", ten)
	}
	var ts listOf[api.TenantView]
	f.must(alphaKey, "GET", "/api/v1/tenants", nil, 200, &ts)
	if len(ts.Items) != 1 || ts.Items[0].ID != "alpha" {
		t.Fatalf("alpha's tenants: %+v", ts)
	}
	f.must(alphaKey, "POST", "/api/v1/tenants", map[string]any{"id": "gamma"}, 403, nil)
	var ks listOf[api.KeyView]
	code, b := f.do(alphaKey, "GET", "/api/v1/tenants/alpha/keys", nil)
	if code != 200 || strings.Contains(string(b), alphaKey) || strings.Contains(string(b), `"key"`) {
		t.Fatalf("keys: %d %s", code, b)
	}
	f.must(alphaKey, "GET", "/api/v1/tenants/alpha/keys", nil, 200, &ks)
	if len(ks.Items) != 1 {
		t.Fatalf("keys: %+v", ks)
	}
	var second api.NewKey
	f.must(alphaKey, "POST", "/api/v1/tenants/alpha/keys", map[string]any{"name": "second"}, 201, &second)
	f.must(alphaKey, "DELETE", "/api/v1/tenants/alpha/keys/"+second.ID, nil, 204, nil)
	f.must(second.Key, "GET", "/api/v1/tenants/alpha", nil, 401, nil)
	var rm api.TenantRemoved
	f.must(f.admin, "DELETE", "/api/v1/tenants/alpha", nil, 200, &rm)
	if rm.Subscriptions != 1 || rm.Connections != 1 {
		t.Fatalf("removed: %+v", rm)
	}
	f.must(alphaKey, "GET", "/api/v1/tenants/alpha", nil, 401, nil)
	f.must(f.admin, "GET", "/api/v1/tenants/alpha", nil, 404, nil)
}
