package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// TestLintSaysWhyATenantLacksAPack: a tenant without a Referrizer
// connection gets a note for each Referrizer pack recipe (file, tenant,
// missing role, the command that adds it) and none for the Referral Rock
// pack, which it runs.
func TestLintSaysWhyATenantLacksAPack(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	err := tenant.NewStore(rdb, prefix).Put(ctx, &tenant.Tenant{ID: "acme", Name: "Acme",
		Connections: map[string]string{"ghl": "ghl-acme", "referralrock": "rr-acme"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	rz, err := catalog.LoadRecipes(c, "../../catalog/recipes/referrizer")
	if err != nil {
		t.Fatal(err)
	}
	rr, err := catalog.LoadRecipes(c, "../../catalog/recipes/referralrock")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tenantNotes(ctx, &out, c, append(rz, rr...), "redis://"+redistest.Addr()+"/0", prefix); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(rz) {
		t.Fatalf("%d notes, want one per Referrizer recipe (%d):\n%s", len(lines), len(rz), out.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "catalog/recipes/referrizer/") || !strings.Contains(l, "note: tenant acme does not run rz-") ||
			!strings.Contains(l, "no connection for role referrizer (ghlflow tenant add acme --connection referrizer=CONNECTION)") {
			t.Errorf("note %q", l)
		}
	}
}
