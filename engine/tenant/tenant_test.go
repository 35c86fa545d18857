package tenant_test

import (
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

func TestApplies(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	parse := func(text string) *catalog.Recipe {
		r, err := (&catalog.RecipeLoader{Catalog: cat}).Parse("r.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	step := "\nsteps:\n  - op: ghl.contacts.tags.add\n    input: {contactId: \"{{ .trigger.id }}\", tags: [x]}\n"
	byRole := parse("name: by-role\ntrigger: {op: ghl.contacts.search, every: 1m}" + step)
	pro := parse("name: pro\ntenants: {plan: pro}\ntrigger: {op: ghl.contacts.search, connection: ghl, every: 1m}" + step)
	twoApps := parse("name: two-apps\ntrigger: {op: referralrock.referrals.new, every: 5m}" + step)
	named := parse("name: named\ntrigger: {op: ghl.contacts.search, connection: acme, every: 1m}" + step)
	agency := parse("name: agency\nroles: {agency: ghl}\ntrigger: {op: ghl.contacts.search, connection: agency, every: 1m}" + step)

	ghlPro := &tenant.Tenant{ID: "a", Labels: map[string]string{"plan": "pro"}, Connections: map[string]string{"ghl": "ghl-a"}}
	ghlFree := &tenant.Tenant{ID: "b", Labels: map[string]string{"plan": "free"}, Connections: map[string]string{"ghl": "ghl-b"}}
	both := &tenant.Tenant{ID: "c", Connections: map[string]string{"ghl": "ghl-c", "referralrock": "rr-c", "agency": "ghl-agency"}}
	only := &tenant.Tenant{ID: "d", Connections: map[string]string{"ghl": "ghl-d"}, Recipes: []string{"pro"}}
	cases := []struct {
		tenant *tenant.Tenant
		recipe *catalog.Recipe
		want   bool
	}{
		{ghlPro, byRole, true},
		{ghlPro, pro, true},
		{ghlFree, pro, false},    // label selector
		{ghlPro, twoApps, false}, // no referralrock role
		{both, twoApps, true},    // step defaults to the ghl role
		{ghlPro, named, false},   // names a connection: the default tenant's
		{tenant.Default(), named, true},
		{tenant.Default(), byRole, false},
		{ghlPro, agency, false}, // declared role missing
		{both, agency, true},
		{only, byRole, false}, // not enabled
	}
	for _, c := range cases {
		if got := c.tenant.Applies(cat, c.recipe); got != c.want {
			t.Errorf("tenant %s, recipe %s: applies %v, want %v", c.tenant.ID, c.recipe.Name, got, c.want)
		}
	}
	if got := twoApps.Uses(); len(got) != 2 || got[0] != "referralrock" || got[1] != "ghl" {
		t.Errorf("two-apps uses %v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		t  tenant.Tenant
		ok bool
	}{
		{tenant.Tenant{ID: "loc_1.A-b"}, true},
		{tenant.Tenant{ID: ""}, false},
		{tenant.Tenant{ID: "a b"}, false},
		{tenant.Tenant{ID: tenant.DefaultID}, false},
		{tenant.Tenant{ID: "a", Status: "gone"}, false},
		{tenant.Tenant{ID: "a", Connections: map[string]string{"ghl": ""}}, false},
	} {
		if err := c.t.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.t, err)
		}
	}
}
