package api_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/api"
	"github.com/ghlflow/ghlflow/engine/history"
)

// TestRetryArchivedRun: a recipe writes through the tenant's writer
// role, whose OAuth install was started but not finished; the run of a
// new contact fails for good and its task is archived, a retry before
// the fix is refused only for a run that is not archived; the user
// follows the install link (the connection is stored for the tenant),
// the run is retried through the API and completes, and the tag arrives
// in the simulator.
func TestRetryArchivedRun(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	loc := "loc-acme"
	f.sim.AddLocation(loc)
	tok := f.issue(sim.TokenSpec{LocationID: loc, Private: true})
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, 201, nil)
	f.must(f.admin, "POST", "/api/v1/tenants/acme/connections", map[string]any{"role": "ghl", "app": "ghl", "kind": "private",
		"token": tok.AccessToken, "location_id": loc}, 201, nil)
	link := f.installLink("acme", "writer", "contacts.readonly", "contacts.write")
	var conns listOf[api.ConnectionView]
	f.must(f.admin, "GET", "/api/v1/tenants/acme/connections", nil, 200, &conns)
	if len(conns.Items) != 2 || conns.Items[1].Role != "writer" || conns.Items[1].Status != api.ConnectionMissing {
		t.Fatalf("connections before the install is finished: %+v", conns.Items)
	}
	recipe, err := os.ReadFile("testdata/writer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.must(f.admin, "PUT", "/api/v1/recipes/api-tag-by-writer", string(recipe), 200, nil)
	f.run()

	var subs listOf[api.SubscriptionView]
	until(t, 10*time.Second, "acme's writer subscription", func() bool {
		f.must(f.admin, "GET", "/api/v1/subscriptions?tenant=acme&recipe=api-tag-by-writer", nil, 200, &subs)
		return len(subs.Items) == 1
	})
	sub := subs.Items[0].ID
	until(t, 10*time.Second, "the first poll", func() bool {
		var d api.SubscriptionDetail
		f.must(f.admin, "GET", "/api/v1/subscriptions/"+sub, nil, 200, &d)
		return d.Cursor.Seeded
	})
	ada := f.sim.CreateContact(loc, map[string]any{"firstName": "Ada"})

	var runs listOf[api.RunView]
	until(t, 20*time.Second, "the failed run", func() bool {
		f.must(f.admin, "GET", "/api/v1/runs?subscription="+sub, nil, 200, &runs)
		return len(runs.Items) > 0
	})
	failed := runs.Items[0]
	if len(runs.Items) != 1 || failed.Status != engine.ChainFailed || failed.TaskID == "" ||
		!strings.Contains(failed.ItemKey, ada["id"].(string)) || !strings.Contains(failed.Error, "writer") {
		t.Fatalf("runs: %+v", runs.Items)
	}
	insp := asynq.NewInspectorFromRedisClient(f.rdb)
	until(t, 5*time.Second, "the run's task archived", func() bool {
		info, err := insp.GetTaskInfo(engine.QueueName(f.prefix, engine.QueueChain), failed.TaskID)
		return err == nil && info.State == asynq.TaskStateArchived
	})
	if w := f.sim.Writes("ghl.contacts.tags.add"); len(w) != 0 {
		t.Fatalf("writes before the fix: %d", len(w))
	}

	// The user finishes the install: the writer connection is stored.
	f.follow(link, loc)
	f.must(f.admin, "GET", "/api/v1/tenants/acme/connections", nil, 200, &conns)
	if w := conns.Items[1]; w.Status != "ok" || w.Kind != "oauth" || w.LocationID != loc || w.ID != "acme-writer" ||
		!slices.Contains(w.Scopes, "contacts.write") {
		t.Fatalf("the writer connection after the install: %+v", w)
	}

	var rep api.Replay
	f.must(f.admin, "POST", "/api/v1/runs/"+failed.ID+"/retry", nil, 202, &rep)
	if rep.TaskID != failed.TaskID {
		t.Fatalf("retry %+v of run %+v", rep, failed)
	}
	until(t, 20*time.Second, "the retried run completed", func() bool {
		f.must(f.admin, "GET", "/api/v1/runs?subscription="+sub+"&status=completed", nil, 200, &runs)
		return len(runs.Items) == 1
	})
	if r := runs.Items[0]; r.TaskID != failed.TaskID || r.ItemKey != failed.ItemKey {
		t.Fatalf("completed run %+v, failed run %+v", r, failed)
	}
	writes := f.sim.Writes("ghl.contacts.tags.add")
	if len(writes) != 1 || writes[0].Status != 201 || !strings.Contains(writes[0].Path, ada["id"].(string)) {
		t.Fatalf("writes after the retry: %+v", writes)
	}
	if tags := f.sim.Contact(loc, ada["id"].(string))["tags"]; !slices.Contains(tags.([]any), any("written")) {
		t.Fatalf("Ada's tags: %v", tags)
	}
	// A run that is not archived is not retried.
	code, b := f.do(f.admin, "POST", "/api/v1/runs/"+runs.Items[0].ID+"/retry", nil)
	if code != 409 || !strings.Contains(string(b), "not_archived") {
		t.Fatalf("retry of a completed run: %d %s", code, b)
	}
}

// TestInstallLink: the install link of a role names the tenant's
// connection and, followed, stores it with its location and scopes; a
// body without a role is refused with the field at fault.
func TestInstallLink(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	f.sim.AddLocation("loc-acme")
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "acme"}, 201, nil)
	code, b := f.do(f.admin, "POST", "/api/v1/tenants/acme/connections:install", map[string]any{"scopes": []string{"contacts.readonly"}})
	if code != 422 || !strings.Contains(string(b), `"role"`) {
		t.Fatalf("install without a role: %d %s", code, b)
	}
	link := f.install("acme", "ghl", "loc-acme", "contacts.readonly", "contacts.write")
	var conns listOf[api.ConnectionView]
	f.must(f.admin, "GET", "/api/v1/tenants/acme/connections", nil, 200, &conns)
	if len(conns.Items) != 1 {
		t.Fatalf("connections: %+v", conns.Items)
	}
	c := conns.Items[0]
	if c.Role != "ghl" || c.ID != link.Connection || c.Status != "ok" || c.Kind != "oauth" || c.LocationID != "loc-acme" ||
		strings.Join(c.Scopes, " ") != "contacts.readonly contacts.write" || c.ExpiresAt.IsZero() {
		t.Fatalf("the installed connection: %+v", c)
	}
	// The stored connection works: the tenant's subscription polls with it.
	f.run()
	var subs listOf[api.SubscriptionView]
	until(t, 10*time.Second, "acme's subscription polled", func() bool {
		f.must(f.admin, "GET", "/api/v1/subscriptions?tenant=acme", nil, 200, &subs)
		if len(subs.Items) != 1 {
			return false
		}
		var d api.SubscriptionDetail
		f.must(f.admin, "GET", "/api/v1/subscriptions/"+subs.Items[0].ID, nil, 200, &d)
		return d.Cursor.Seeded && d.LastError == nil
	})
}

// TestRunsListing: the runs of 12 tenants' subscriptions, 40 each, listed
// page by page from the recent-runs index (with and without a status
// filter, and for one tenant) come newest first, each once, the next
// cursor present until the last page.
func TestRunsListing(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	ctx := context.Background()
	for i := range 12 {
		f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": fmt.Sprintf("t%02d", i),
			"connections": map[string]string{"ghl": "static-ghl"}}, 201, nil)
	}
	if _, err := f.eng.RefreshTenants(ctx); err != nil {
		t.Fatal(err)
	}
	var subs listOf[api.SubscriptionView]
	f.must(f.admin, "GET", "/api/v1/subscriptions?limit=500", nil, 200, &subs)
	if len(subs.Items) != 12 {
		t.Fatalf("%d subscriptions, want 12", len(subs.Items))
	}
	hist := history.New(f.rdb, history.Options{Prefix: f.prefix})
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	type run struct {
		key, tenant string
		at          time.Time
		failed      bool
	}
	var all []run
	for i, s := range subs.Items {
		for j := range 40 {
			r := run{key: fmt.Sprintf("%s-%d", s.ID, j), tenant: s.Tenant, at: base.Add(time.Duration(j*len(subs.Items)+i) * time.Second),
				failed: (i+j)%3 == 0}
			status := engine.ChainCompleted
			if r.failed {
				status = engine.ChainFailed
			}
			if err := hist.AddChain(ctx, s.Tenant, s.ID, history.Chain{Time: r.at, Recipe: s.Recipe, ItemKey: r.key, Status: status}); err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(a, b run) int { return b.at.Compare(a.at) }) // newest first
	for _, filter := range []string{"", "status=" + engine.ChainFailed, "tenant=t03"} {
		var want []string
		for _, r := range all {
			if filter == "" || (filter == "tenant=t03" && r.tenant == "t03") || (filter != "tenant=t03" && r.failed) {
				want = append(want, r.key)
			}
		}
		var got []string
		cursor, pages := "", 0
		for {
			var l listOf[api.RunView]
			f.must(f.admin, "GET", "/api/v1/runs?limit=7&"+filter+"&cursor="+cursor, nil, 200, &l)
			for _, r := range l.Items {
				got = append(got, r.ItemKey)
			}
			pages++
			if cursor = l.NextCursor; cursor == "" {
				break
			}
			if pages > 100 {
				t.Fatal("no last page")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: %d runs listed in %d pages, want %d\ngot  %v\nwant %v", filter, len(got), pages, len(want), got, want)
		}
	}
}
