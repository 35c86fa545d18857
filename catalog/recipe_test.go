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
	files, _ := filepath.Glob("recipes/*.yaml")
	if len(files) < 3 {
		t.Fatalf("want at least 3 shipped recipes, found %d", len(files))
	}
	rs, err := catalog.LoadRecipes(c, "recipes")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(files) {
		t.Fatalf("loaded %d recipes from %d files", len(rs), len(files))
	}
	for _, r := range rs {
		if r.Trigger.Dedup == "" || len(r.Steps) == 0 {
			t.Errorf("%s: dedup %q, %d steps", r.Name, r.Trigger.Dedup, len(r.Steps))
		}
	}
}
