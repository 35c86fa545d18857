package catalog_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./catalog -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestRecipeErrorsGolden loads each broken recipe in testdata/recipes and
// compares every error it reports, with file, line and column, with its
// .golden file.
func TestRecipeErrorsGolden(t *testing.T) {
	c := mustCatalog(t)
	files, _ := filepath.Glob("testdata/recipes/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d broken recipes", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := catalog.LoadRecipes(c, f)
			if err == nil {
				t.Fatal("loaded without error")
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", err.Error()+"\n")
		})
	}
}

// TestCatalogErrorsGolden loads a catalog with many mistakes and compares
// the whole list of errors with its golden file.
func TestCatalogErrorsGolden(t *testing.T) {
	_, err := catalog.Load(os.DirFS("testdata/catalog/bad"))
	if err == nil {
		t.Fatal("loaded without error")
	}
	golden(t, "testdata/catalog/bad.golden", err.Error()+"\n")
}
