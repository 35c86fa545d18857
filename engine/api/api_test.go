package api_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/api"
)

type listOf[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// TestEndToEndThroughAPI: a tenant, its connections and a recipe made
// through the API run; contacts created in the simulator show up as
// completed runs with each step's input and output; test, replay, pause
// and resume work; no response carries a secret: the tokens, refresh
// tokens and basic keys the simulator issued, the OAuth client secret or
// an API key (but in the response that made it).
func TestEndToEndThroughAPI(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	loc := "loc-acme"
	f.sim.AddLocation(loc)
	tok := f.issue(sim.TokenSpec{LocationID: loc, Private: true})

	var ten api.TenantView
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "acme", "name": "Acme Inc", "labels": map[string]string{"plan": "pro"}}, 201, &ten)
	var conn api.ConnectionView
	f.must(f.admin, "POST", "/api/v1/tenants/acme/connections", map[string]any{"role": "ghl", "app": "ghl", "kind": "private",
		"token": tok.AccessToken, "location_id": loc}, 201, &conn)
	if conn.Status != "ok" || conn.ID != "acme-ghl" {
		t.Fatalf("connection: %+v", conn)
	}
	// Secrets of every kind the store keeps: Referral Rock's basic keys,
	// a Referrizer token and an OAuth install with its refresh token.
	rr := f.issue(sim.TokenSpec{App: "referralrock", LocationID: loc})
	f.must(f.admin, "POST", "/api/v1/tenants/acme/connections", map[string]any{"role": "referralrock", "app": "referralrock",
		"kind": "basic", "username": rr.Username, "password": rr.Password}, 201, nil)
	rz := f.issue(sim.TokenSpec{App: "referrizer", LocationID: loc})
	f.must(f.admin, "POST", "/api/v1/tenants/acme/connections", map[string]any{"role": "referrizer", "app": "referrizer",
		"kind": "apikey", "token": rz.AccessToken}, 201, nil)
	f.install("acme", "crm", loc, "contacts.readonly")
	var conns listOf[api.ConnectionView]
	f.must(f.admin, "GET", "/api/v1/tenants/acme/connections", nil, 200, &conns)
	var kinds []string
	for _, c := range conns.Items {
		kinds = append(kinds, c.Role+":"+c.Kind+":"+c.Status)
	}
	if strings.Join(kinds, " ") != "crm:oauth:ok ghl:private:ok referralrock:basic:ok referrizer:apikey:ok" {
		t.Fatalf("acme's connections: %v", kinds)
	}
	var key api.NewKey
	f.must(f.admin, "POST", "/api/v1/tenants/acme/keys", map[string]any{"name": "acme's"}, 201, &key)
	f.must(key.Key, "GET", "/api/v1/tenants/acme", nil, 200, nil)
	tag, err := os.ReadFile("testdata/tag.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.must(f.admin, "PUT", "/api/v1/recipes/api-tag-new-contacts", string(tag), 200, nil)
	f.run()

	var subs listOf[api.SubscriptionView]
	until(t, 10*time.Second, "two subscriptions of acme", func() bool {
		f.must(f.admin, "GET", "/api/v1/subscriptions?tenant=acme", nil, 200, &subs)
		return len(subs.Items) == 2
	})
	byRecipe := map[string]string{}
	for _, s := range subs.Items {
		byRecipe[s.Recipe] = s.ID
		if s.Status != api.SubActive || s.NextDue == nil || s.ConnectionStatus != "ok" {
			t.Fatalf("subscription %+v", s)
		}
	}
	tagSub := byRecipe["api-tag-new-contacts"]
	until(t, 10*time.Second, "the first polls", func() bool {
		for _, id := range byRecipe {
			var d api.SubscriptionDetail
			f.must(f.admin, "GET", "/api/v1/subscriptions/"+id, nil, 200, &d)
			if !d.Cursor.Seeded {
				return false
			}
		}
		return true
	})
	ada := f.sim.CreateContact(loc, map[string]any{"firstName": "Ada", "lastName": "Lovelace"})
	f.sim.CreateContact(loc, map[string]any{"firstName": "Alan", "lastName": "Turing"})

	var runs listOf[api.RunView]
	until(t, 20*time.Second, "four completed runs", func() bool {
		f.must(f.admin, "GET", "/api/v1/runs?status=completed", nil, 200, &runs)
		return len(runs.Items) == 4
	})
	var tagRun api.RunView
	for _, r := range runs.Items {
		if r.Subscription == tagSub && r.ItemKey != "" && strings.Contains(r.ItemKey, ada["id"].(string)) {
			f.must(f.admin, "GET", "/api/v1/runs/"+r.ID, nil, 200, &tagRun)
		}
	}
	if len(tagRun.Steps) != 1 || tagRun.Steps[0].Status != "done" {
		t.Fatalf("Ada's tag run: %+v", tagRun)
	}
	var in map[string]any
	if err := json.Unmarshal(tagRun.Steps[0].Input, &in); err != nil || fmt.Sprint(in["tags"]) != "[hello-ada]" {
		t.Fatalf("step input %s (%v)", tagRun.Steps[0].Input, err)
	}
	if !strings.Contains(string(tagRun.Steps[0].Output), "hello-ada") {
		t.Fatalf("step output %s", tagRun.Steps[0].Output)
	}

	// The trigger test reads items without firing or marking them.
	var sample api.Sample
	f.must(f.admin, "POST", "/api/v1/subscriptions/"+tagSub+"/test", nil, 200, &sample)
	if len(sample.Items) != 2 || !strings.Contains(string(sample.Items[0].Item)+string(sample.Items[1].Item), "Ada") {
		t.Fatalf("sample: %+v", sample)
	}
	// A replay fires the chain of Ada again.
	var rep api.Replay
	f.must(f.admin, "POST", "/api/v1/subscriptions/"+tagSub+"/replay", map[string]any{"item_key": tagRun.ItemKey}, 202, &rep)
	until(t, 10*time.Second, "the replayed run", func() bool {
		f.must(f.admin, "GET", "/api/v1/runs?status=completed&subscription="+tagSub, nil, 200, &runs)
		return len(runs.Items) == 3
	})
	if runs.Items[0].ItemKey != tagRun.ItemKey || runs.Items[0].TaskID != rep.TaskID {
		t.Fatalf("newest run %+v, replay %+v", runs.Items[0], rep)
	}

	// A paused subscription's polls are skipped until it resumes.
	var sv api.SubscriptionView
	f.must(f.admin, "POST", "/api/v1/subscriptions/"+tagSub+"/pause", nil, 200, &sv)
	if sv.Status != api.SubPaused {
		t.Fatalf("paused: %+v", sv)
	}
	until(t, 10*time.Second, "a skipped poll", func() bool {
		var d api.SubscriptionDetail
		f.must(f.admin, "GET", "/api/v1/subscriptions/"+tagSub, nil, 200, &d)
		return len(d.LastPolls) > 0 && d.LastPolls[0].Skipped == "subscription paused"
	})
	f.must(f.admin, "POST", "/api/v1/subscriptions/"+tagSub+"/resume", nil, 200, &sv)
	if sv.Status != api.SubActive {
		t.Fatalf("resumed: %+v", sv)
	}
	var d api.SubscriptionDetail
	f.must(f.admin, "GET", "/api/v1/subscriptions/"+tagSub, nil, 200, &d)
	if d.Counters.Polls == 0 || d.Counters.New < 2 || d.Cursor.Watermark == nil {
		t.Fatalf("detail: %+v", d)
	}
	f.noSecretsInBodies()
	n, secrets := f.checkedBodies()
	t.Logf("%d responses checked against the OpenAPI document and for %d secrets", n, secrets)
}

// TestFailedPollReason: a poll refused with a revoked token shows its
// reason in the subscription (last_error, errors counted) and the
// subscription as held by its connection, without the token (or any
// other secret).
func TestFailedPollReason(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	f.sim.AddLocation("loc-acme")
	tok := f.issue(sim.TokenSpec{LocationID: "loc-acme", Private: true})
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "acme"}, 201, nil)
	f.must(f.admin, "POST", "/api/v1/tenants/acme/connections", map[string]any{"role": "ghl", "app": "ghl", "kind": "private",
		"token": tok.AccessToken, "location_id": "loc-acme"}, 201, nil)
	if !f.sim.RevokeToken(tok.AccessToken) {
		t.Fatal("the simulator did not revoke the token")
	}
	f.run()
	var subs listOf[api.SubscriptionView]
	until(t, 10*time.Second, "acme's subscription", func() bool {
		f.must(f.admin, "GET", "/api/v1/subscriptions?tenant=acme", nil, 200, &subs)
		return len(subs.Items) == 1
	})
	var d api.SubscriptionDetail
	until(t, 15*time.Second, "the failed poll's reason", func() bool {
		f.must(f.admin, "GET", "/api/v1/subscriptions/"+subs.Items[0].ID, nil, 200, &d)
		return d.LastError != nil
	})
	if d.Counters.Errors == 0 || !strings.Contains(d.LastError.Reason, "401") {
		t.Fatalf("last error %+v, counters %+v", d.LastError, d.Counters)
	}
	until(t, 10*time.Second, "the subscription held by its connection", func() bool {
		f.must(f.admin, "GET", "/api/v1/subscriptions/"+subs.Items[0].ID, nil, 200, &d)
		return d.Status == api.SubConnectionPaused && d.ConnectionStatus == "needs_reauth"
	})
	var conns listOf[api.ConnectionView]
	f.must(f.admin, "GET", "/api/v1/tenants/acme/connections", nil, 200, &conns)
	if len(conns.Items) != 1 || conns.Items[0].Status != "needs_reauth" || conns.Items[0].Reason == "" {
		t.Fatalf("connections: %+v", conns)
	}
	f.noSecretsInBodies()
}
