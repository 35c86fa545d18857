package catalog_test

import (
	"path/filepath"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

func TestShippedRecipesValidate(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	// The top folder and each pack folder (recipes/referrizer, ...).
	for _, dir := range []string{"recipes", "recipes/tenants", "recipes/referrizer", "recipes/referralrock"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if len(files) < 2 {
			t.Fatalf("%s: want at least 2 shipped recipes, found %d", dir, len(files))
		}
		rs, err := catalog.LoadRecipes(c, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != len(files) {
			t.Fatalf("%s: loaded %d recipes from %d files", dir, len(rs), len(files))
		}
		for _, r := range rs {
			if r.Trigger.Dedup == "" || len(r.Steps) == 0 {
				t.Errorf("%s: dedup %q, %d steps", r.Name, r.Trigger.Dedup, len(r.Steps))
			}
		}
	}
}
