package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// tenantRecipes are four recipes written once for every tenant: they name
// the ghl role (or leave it to default) and never a location.
var tenantRecipes = map[string]string{
	"welcome.yaml": `name: welcome
trigger: {op: ghl.contacts.search, connection: ghl, every: 1m, params: {sort: [{field: dateAdded, direction: desc}]}}
steps:
  - op: ghl.contacts.tasks.create
    input: {contactId: "{{ .trigger.id }}", title: "Call {{ .trigger.firstName }} for {{ .tenant.name }}", dueDate: "2030-01-01T00:00:00Z", completed: false}
`,
	"tag-plan.yaml": `name: tag-plan
tenants: {plan: pro}
trigger: {op: ghl.contacts.search, every: 1m, params: {sort: [{field: dateAdded, direction: desc}]}}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: ["plan-{{ .tenant.labels.plan }}"]}
`,
	"note-location.yaml": `name: note-location
trigger: {op: ghl.contacts.search, every: 1m, params: {sort: [{field: dateAdded, direction: desc}]}}
steps:
  - op: ghl.contacts.notes.create
    input: {contactId: "{{ .trigger.id }}", body: "location {{ .connection.location_id }} of tenant {{ .tenant.id }}"}
`,
	"opportunities.yaml": `name: opportunities
trigger: {op: ghl.opportunities.search, every: 1m}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.contactId }}", tags: [opportunity]}
`,
}

// tenantFixture is a simulator with one location per tenant, a static ghl
// connection per location and recipe files for every tenant.
type tenantFixture struct {
	srv    *sim.Server
	url    string
	tokens map[string]string // tenant id → its location's access token
	conns  auth.Source
	dir    string
	mu     sync.Mutex
	chains []engine.ChainResult
}

func newTenantFixture(t *testing.T, ids ...string) *tenantFixture {
	t.Helper()
	cat := testCatalog(t)
	srv, ts, _, _ := simConn(t, cat, "loc-"+ids[0], sim.Config{})
	var entries []auth.StaticEntry
	tokens := map[string]string{}
	for _, id := range ids {
		loc := "loc-" + id
		srv.AddLocation(loc)
		tok := srv.IssueToken(sim.TokenSpec{LocationID: loc, Private: true})
		tokens[id] = tok.AccessToken
		entries = append(entries, auth.StaticEntry{ID: "ghl-" + id, App: "ghl", LocationID: loc, Token: tok.AccessToken})
	}
	conns, err := auth.NewStatic(entries...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range tenantRecipes {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &tenantFixture{srv: srv, url: ts.URL, tokens: tokens, conns: conns, dir: dir}
}

// put stores tenant id with its location's connection in the ghl role.
func (f *tenantFixture) put(t *testing.T, st *tenant.Store, id, plan string) {
	t.Helper()
	err := st.Put(context.Background(), &tenant.Tenant{ID: id, Name: "Tenant " + id, Labels: map[string]string{"plan": plan},
		Connections: map[string]string{"ghl": "ghl-" + id}})
	if err != nil {
		t.Fatal(err)
	}
}

// engine builds an engine polling every second.
func (f *tenantFixture) engine(t *testing.T, rdb redis.UniversalClient, prefix string) *engine.Engine {
	t.Helper()
	cat := testCatalog(t)
	eng, err := engine.New(engine.Config{Catalog: cat, Redis: rdb, Recipes: []string{f.dir}, Prefix: prefix,
		Caller:      transport.New(transport.Config{Catalog: cat, Connections: f.conns, BaseURL: f.url}),
		Connections: f.conns, Every: time.Second, TickEvery: 100 * time.Millisecond, TenantRefresh: time.Second,
		OnChain: func(r engine.ChainResult) { f.mu.Lock(); f.chains = append(f.chains, r); f.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// completed returns the recipes of the completed chains of subs.
func (f *tenantFixture) completed(subs map[string]string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.chains {
		if name, ok := subs[r.Sub]; ok && r.Status == engine.ChainCompleted {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// until waits for cond, failing after d.
func until(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// waitSeeded waits until every subscription eng runs has made its first
// poll (what existed then counts as seen).
func waitSeeded(t *testing.T, ctx context.Context, eng *engine.Engine) {
	t.Helper()
	until(t, 20*time.Second, "every subscription seeded", func() bool {
		for _, s := range eng.Registry().All() {
			if st, err := eng.Poller.Dedup.State(ctx, s.ID); err != nil || !st.Seeded {
				return false
			}
		}
		return true
	})
}

// runTenantsAB runs an engine for tenants A and B (one simulated location
// each, every recipe of the fixture) until the test ends, once every
// subscription has made its first poll.
func runTenantsAB(t *testing.T) (*tenantFixture, *engine.Engine) {
	t.Helper()
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := newTenantFixture(t, "A", "B")
	cli := tenant.NewStore(rdb, prefix)
	f.put(t, cli, "A", "pro")
	f.put(t, cli, "B", "pro")
	eng := f.engine(t, rdb, prefix)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitSeeded(t, ctx, eng)
	return f, eng
}

// TestTenantsShareRecipes: recipes written once run for every tenant with
// the tenant's own connection; a new contact in B's location fires B's
// chains only; a tenant stored by another process is polled within 5 s.
func TestTenantsShareRecipes(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newTenantFixture(t, "A", "B", "C")
	cli := tenant.NewStore(rdb, prefix) // what `ghlflow tenant add` does
	f.put(t, cli, "A", "pro")
	f.put(t, cli, "B", "pro")
	eng := f.engine(t, rdb, prefix)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// C arrives while the engine runs: polled within 5 s.
	added := time.Now()
	f.put(t, cli, "C", "pro")
	until(t, 5*time.Second, "tenant C polled", func() bool {
		return f.srv.RequestCount("ghl.opportunities.search", "loc-C") > 0
	})
	t.Logf("tenant added in one process, polled by another after %s", time.Since(added).Round(time.Millisecond))

	subs := eng.Registry().All()
	if len(subs) != 12 {
		t.Fatalf("%d subscriptions, want 3 tenants x 4 recipes = 12", len(subs))
	}
	byTenant := map[string]map[string]string{}
	for _, s := range subs {
		if s.Connection != "ghl-"+s.Tenant.ID {
			t.Errorf("%s of tenant %s polls through %s", s.Recipe.Name, s.Tenant.ID, s.Connection)
		}
		if byTenant[s.Tenant.ID] == nil {
			byTenant[s.Tenant.ID] = map[string]string{}
		}
		byTenant[s.Tenant.ID][s.ID] = s.Recipe.Name
	}
	// Every subscription has seeded before the contact arrives.
	waitSeeded(t, ctx, eng)
	contact := f.srv.CreateContact("loc-B", map[string]any{"firstName": "Bea", "email": "bea@example.com"})
	want := []string{"note-location", "tag-plan", "welcome"}
	until(t, 20*time.Second, "B's chains", func() bool { return slices.Equal(f.completed(byTenant["B"]), want) })
	time.Sleep(2500 * time.Millisecond) // more polls of A and C
	for _, id := range []string{"A", "C"} {
		if got := f.completed(byTenant[id]); len(got) > 0 {
			t.Errorf("tenant %s ran %v for a contact of B", id, got)
		}
	}
	for _, w := range f.srv.Writes("") {
		if w.Op != "ghl.contacts.search" && w.Location != "loc-B" {
			t.Errorf("write %s %s at %s", w.Method, w.Path, w.Location)
		}
	}
	notes := f.srv.Writes("ghl.contacts.notes.create")
	if len(notes) != 1 || !strings.Contains(string(notes[0].Body), "location loc-B of tenant B") ||
		!strings.Contains(notes[0].Path, contact["id"].(string)) {
		t.Errorf("notes %+v", notes)
	}
	tasks := f.srv.Writes("ghl.contacts.tasks.create")
	if len(tasks) != 1 || !strings.Contains(string(tasks[0].Body), "Call Bea for Tenant B") {
		t.Errorf("tasks %+v", tasks)
	}
	// The op taking location_id got it from each tenant's connection.
	for _, id := range []string{"A", "B", "C"} {
		ok := 0
		for _, r := range f.srv.Requests() {
			if r.Op == "ghl.opportunities.search" && r.Location == "loc-"+id && r.Status == 200 {
				ok++
			}
		}
		if ok == 0 {
			t.Errorf("no successful opportunities search for tenant %s", id)
		}
	}
}

// TestRemoveTenantLeavesNoKey: removing a tenant stops its polls and
// deletes every key of its state, its pause and its stored connection; a
// scan of the whole database finds nothing of it, and the other tenant
// goes on.
func TestRemoveTenantLeavesNoKey(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newTenantFixture(t, "A")
	// The dentist's connection is stored, sealed, in Redis.
	f.srv.AddLocation("loc-dentist")
	tok := f.srv.IssueToken(sim.TokenSpec{LocationID: "loc-dentist", Private: true})
	ring, err := auth.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, auth.Connection{ID: "ghl-dentist", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc-dentist"},
		auth.Credential{AccessToken: tok.AccessToken}); err != nil {
		t.Fatal(err)
	}
	f.conns = auth.Multi{f.conns, store}
	cli := tenant.NewStore(rdb, prefix)
	f.put(t, cli, "A", "pro")
	if err := cli.Put(ctx, &tenant.Tenant{ID: "dentist", Name: "Dentist", Labels: map[string]string{"plan": "pro"}, Connections: map[string]string{"ghl": "ghl-dentist"}}); err != nil {
		t.Fatal(err)
	}
	eng := f.engine(t, rdb, prefix)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	dSubs := eng.Registry().Tenant("dentist")
	if len(dSubs) != 4 {
		t.Fatalf("tenant dentist has %d subscriptions, want 4", len(dSubs))
	}
	subOf := map[string]string{}
	for _, s := range dSubs {
		subOf[s.ID] = s.Recipe.Name
	}
	until(t, 20*time.Second, "dentist seeded", func() bool {
		for _, s := range dSubs {
			if st, err := eng.Poller.Dedup.State(ctx, s.ID); err != nil || !st.Seeded {
				return false
			}
		}
		return true
	})
	f.srv.CreateContact("loc-dentist", map[string]any{"firstName": "Dee", "email": "dee@example.com"})
	until(t, 20*time.Second, "dentist's chains", func() bool { return len(f.completed(subOf)) == 3 })
	if err := eng.Pauses().PauseConnection(ctx, "ghl-dentist", "test pause"); err != nil {
		t.Fatal(err)
	}

	rep, err := engine.RemoveTenant(ctx, rdb, prefix, "dentist") // `ghlflow tenant remove D`
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed: %+v", rep)
	until(t, 5*time.Second, "dentist's subscriptions dropped", func() bool { return len(eng.Registry().Tenant("dentist")) == 0 })
	before := f.srv.RequestCount("ghl.contacts.search", "loc-dentist")
	time.Sleep(2500 * time.Millisecond)
	if n := f.srv.RequestCount("ghl.contacts.search", "loc-dentist"); n != before {
		t.Errorf("dentist polled %d times after its removal", n-before)
	}
	// No key, field, member or task of D anywhere in the database.
	marks := []string{"dentist"}
	for id := range subOf {
		marks = append(marks, id)
	}
	for _, k := range scanAll(t, rdb) {
		for _, m := range marks {
			if strings.Contains(k, m) {
				t.Errorf("key %s is left (%s)", k, m)
			}
		}
		vals := keyContents(t, rdb, k)
		for _, m := range marks {
			if strings.Contains(vals, m) {
				t.Errorf("key %s still holds %s", k, m)
			}
		}
	}
	if got := eng.Registry().Tenant("A"); len(got) != 4 {
		t.Errorf("tenant A has %d subscriptions after D's removal", len(got))
	}
}

// scanAll returns every key of the database.
func scanAll(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	var out []string
	iter := rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// keyContents renders a key's fields, members and value as text (other
// tests' keys may vanish meanwhile: that reads as empty).
func keyContents(t *testing.T, rdb *redis.Client, k string) string {
	ctx := context.Background()
	switch rdb.Type(ctx, k).Val() {
	case "string":
		return rdb.Get(ctx, k).Val()
	case "hash":
		return fmt.Sprint(rdb.HGetAll(ctx, k).Val())
	case "set":
		return fmt.Sprint(rdb.SMembers(ctx, k).Val())
	case "zset":
		return fmt.Sprint(rdb.ZRange(ctx, k, 0, -1).Val())
	case "list":
		return fmt.Sprint(rdb.LRange(ctx, k, 0, -1).Val())
	}
	return ""
}

// TestOAuthInstallMakesTenants: an install through /oauth/callback makes
// the tenant of its location with the ghl role filled in, an agency
// install one tenant per location, and the running engine polls them
// within 5 s.
func TestOAuthInstallMakesTenants(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newTenantFixture(t, "A")
	f.srv.AddLocation("loc-X")
	f.srv.AddLocation("loc-Y")
	cat := testCatalog(t)
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()
	oauth, err := auth.NewOAuthApp(cat.App("ghl"), f.url, "sim-client", "sim-secret", app.URL+"/oauth/callback")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := auth.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring, OAuth: map[string]*auth.OAuthApp{"ghl": oauth}})
	if err != nil {
		t.Fatal(err)
	}
	f.conns = auth.Multi{f.conns, store}
	store.UseExchanger(transport.New(transport.Config{Catalog: cat, Connections: f.conns}))
	eng := f.engine(t, rdb, prefix)
	mux.Handle("/oauth/", store.InstallHandler(engine.InstallTenants(eng.Tenants())))
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for _, start := range []string{"/oauth/start?app=ghl&scopes=contacts.readonly,contacts.write,opportunities.readonly",
		"/oauth/start?app=ghl&name=agency&agency=1&locations=loc-X,loc-Y&scopes=oauth.write,contacts.readonly,contacts.write,opportunities.readonly"} {
		resp, err := http.Get(app.URL + start)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("install %s ended with %d", start, resp.StatusCode)
		}
	}
	installed := time.Now()
	ts, _, err := eng.Tenants().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tn := range ts {
		got = append(got, tn.ID+":"+tenant.FormatPairs(tn.Connections))
	}
	want := []string{"loc-A:ghl=ghl-loc-A", "loc-X:ghl=agency-loc-X", "loc-Y:ghl=agency-loc-Y"}
	if !slices.Equal(got, want) {
		t.Fatalf("tenants %v, want %v", got, want)
	}
	for _, loc := range []string{"loc-A", "loc-X", "loc-Y"} {
		until(t, 5*time.Second, "tenant "+loc+" polled", func() bool {
			for _, r := range f.srv.Requests() {
				if r.Op == "ghl.opportunities.search" && r.Location == loc && r.Status == 200 {
					return true
				}
			}
			return false
		})
	}
	t.Logf("installed tenants polled %s after the install", time.Since(installed).Round(time.Millisecond))
}

// TestRevokedTokenPausesOnlyItsTenant: B's token is revoked; B's
// subscriptions pause with the reason, A's go on polling and firing.
func TestRevokedTokenPausesOnlyItsTenant(t *testing.T) {
	overlapInShort(t)
	f, eng := runTenantsAB(t)
	if !f.srv.RevokeToken(f.tokens["B"]) {
		t.Fatal("revoke B's token")
	}
	until(t, 10*time.Second, "B paused", func() bool { _, ok := eng.Pauses().PausedReason("ghl-B"); return ok })
	if reason, ok := eng.Pauses().PausedReason("ghl-A"); ok {
		t.Fatalf("A paused too: %s", reason)
	}
	aSubs := map[string]string{}
	for _, s := range eng.Registry().Tenant("A") {
		aSubs[s.ID] = s.Recipe.Name
	}
	f.srv.CreateContact("loc-A", map[string]any{"firstName": "Ann", "email": "ann@example.com"})
	until(t, 20*time.Second, "A's chains after B's pause", func() bool { return len(f.completed(aSubs)) == 3 })
	before := f.srv.RequestCount("ghl.contacts.search", "loc-B")
	time.Sleep(2500 * time.Millisecond)
	if n := f.srv.RequestCount("ghl.contacts.search", "loc-B"); n != before {
		t.Errorf("paused tenant B polled %d more times", n-before)
	}
}
