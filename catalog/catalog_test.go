package catalog_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

func mustCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Default()
	if err != nil {
		t.Fatalf("embedded catalog: %v", err)
	}
	return c
}

// The 14 GHL categories and their trigger/action counts, as the product
// promises them.
var ghlCategories = []struct {
	name              string
	triggers, actions int
}{
	{"Contacts", 5, 10},
	{"Contact Tasks", 3, 5},
	{"Contact Notes", 2, 3},
	{"Calendars", 8, 14},
	{"Appointments", 5, 8},
	{"Opportunities", 3, 7},
	{"Users", 4, 3},
	{"Conversations", 8, 4},
	{"Businesses", 2, 4},
	{"Workflows & Campaigns", 2, 5},
	{"Locations", 4, 2},
	{"Associations", 4, 3},
	{"Relations", 1, 2},
	{"Blogs", 5, 2},
}

func TestGHLOperations(t *testing.T) {
	c := mustCatalog(t)
	ops := c.Find(catalog.Filter{App: "ghl"})
	// The 126 mapped operations, plus Search Location Tasks (a trigger)
	// and Find Contact Tasks (its list as a step), which the packs use.
	if len(ops) != 128 {
		t.Errorf("ghl operations: %d, want 128", len(ops))
	}
	if n := len(c.Find(catalog.Filter{App: "ghl", Kind: catalog.KindTrigger})); n != 56 {
		t.Errorf("ghl triggers: %d, want 56", n)
	}
	if n := len(c.Find(catalog.Filter{App: "ghl", Kind: catalog.KindAction})); n != 72 {
		t.Errorf("ghl actions: %d, want 72", n)
	}
	var names []string
	for _, cat := range ghlCategories {
		names = append(names, cat.name)
		tr := len(c.Find(catalog.Filter{App: "ghl", Category: cat.name, Kind: catalog.KindTrigger}))
		ac := len(c.Find(catalog.Filter{App: "ghl", Category: cat.name, Kind: catalog.KindAction}))
		if tr != cat.triggers || ac != cat.actions {
			t.Errorf("%s: %d triggers and %d actions, want %d and %d", cat.name, tr, ac, cat.triggers, cat.actions)
		}
	}
	got := c.Categories("ghl")
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("categories %q, want %q", got, names)
	}
	for _, op := range ops {
		if op.Version != "2021-07-28" && op.Version != "2021-04-15" {
			t.Errorf("%s: Version %q", op.ID, op.Version)
		}
	}
}

func TestReferralOperations(t *testing.T) {
	c := mustCatalog(t)
	want := []string{
		"referralrock.members.new", "referralrock.referrals.new", "referralrock.referrals.status_changed", "referralrock.rewards.issued",
		"referralrock.members.create", "referralrock.members.update", "referralrock.referrals.create", "referralrock.referrals.update", "referralrock.rewards.issue",
		"referrizer.contacts.new", "referrizer.loyalty_rewards.new", "referrizer.loyalty_rewards.redeemed",
		"referrizer.contacts.upsert", "referrizer.contacts.invite", "referrizer.contacts.tags.add", "referrizer.contacts.notes.add", "referrizer.tasks.create",
	}
	for _, id := range want {
		if c.Op(id) == nil {
			t.Errorf("missing %s", id)
		}
	}
	// Referrizer's contact writes are not documented anywhere public.
	if op := c.Op("referrizer.contacts.invite"); op != nil && !op.Inferred {
		t.Errorf("%s should be marked inferred", op.ID)
	}
	for _, app := range []string{"referralrock", "referrizer"} {
		a := c.App(app)
		if a == nil || a.BaseURL == "" || len(a.Auth) == 0 {
			t.Errorf("app %s: %+v", app, a)
		}
	}
}

func TestApps(t *testing.T) {
	c := mustCatalog(t)
	ghl := c.App("ghl")
	if ghl.BaseURL != "https://services.leadconnectorhq.com" {
		t.Errorf("base url %q", ghl.BaseURL)
	}
	rl := ghl.RateLimit
	if rl.Burst != 100 || rl.Interval.String() != "10s" || rl.Daily != 200000 || rl.Per != "location" {
		t.Errorf("rate limit %+v", rl)
	}
	var kinds []string
	for _, a := range ghl.Auth {
		kinds = append(kinds, a.Kind)
	}
	if !slices.Equal(kinds, []string{"oauth2", "private_integration"}) {
		t.Errorf("auth kinds %q", kinds)
	}
}

func TestUniqueIDs(t *testing.T) {
	c := mustCatalog(t)
	seen := map[string]bool{}
	for _, op := range c.Ops() {
		if seen[op.ID] {
			t.Errorf("duplicate %s", op.ID)
		}
		seen[op.ID] = true
	}
	if len(seen) != 164 {
		t.Errorf("%d operations, want 164 (128 GHL + 36 referral apps)", len(seen))
	}
}

// TestSpecConformance checks every GHL operation's method, path and scope
// against the official OpenAPI specs in ../shared/ghl-openapi.
func TestSpecConformance(t *testing.T) {
	dir := os.Getenv("GHL_OPENAPI_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "ghl-openapi")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "apps", "*.json"))
	if len(files) == 0 {
		t.Skipf("SKIPPING SPEC CONFORMANCE: no specs at %s/apps (set GHL_OPENAPI_DIR)", dir)
	}
	type specOp struct{ scopes []string }
	spec := map[string]specOp{} // "GET /contacts/{contactId}" → scopes
	for _, f := range files {
		var doc struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for path, methods := range doc.Paths {
			for method, raw := range methods {
				var op struct {
					Security []map[string][]string `json:"security"`
				}
				_ = json.Unmarshal(raw, &op)
				var scopes []string
				for _, s := range op.Security {
					for _, v := range s {
						scopes = append(scopes, v...)
					}
				}
				key := upper(method) + " " + path
				prev := spec[key]
				prev.scopes = append(prev.scopes, scopes...)
				spec[key] = prev
			}
		}
	}
	c := mustCatalog(t)
	for _, op := range c.Find(catalog.Filter{App: "ghl"}) {
		s, ok := spec[op.Method+" "+op.Path]
		if !ok {
			t.Errorf("%s: %s %s is in no spec", op.ID, op.Method, op.Path)
			continue
		}
		// Where the spec names scopes, ours must be one of them; a few
		// operations declare none (the notes say where their scope comes from).
		if len(s.scopes) > 0 && !slices.Contains(s.scopes, op.Scope) {
			t.Errorf("%s: scope %q, spec lists %q", op.ID, op.Scope, s.scopes)
		}
		if len(s.scopes) == 0 && op.Notes == "" {
			t.Errorf("%s: the spec names no scope and the notes do not say where %q comes from", op.ID, op.Scope)
		}
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
