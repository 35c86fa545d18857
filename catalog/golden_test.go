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
			l := &catalog.RecipeLoader{Catalog: c}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", lintReport(t, l, f))
		})
	}
}

// lintReport loads the recipe at path and returns its errors, then its
// warnings, one a line; it fails when there are none.
func lintReport(t *testing.T, l *catalog.RecipeLoader, path string) string {
	t.Helper()
	var b strings.Builder
	_, err := l.Load(path)
	if err != nil {
		b.WriteString(err.Error() + "\n")
	}
	for _, w := range l.Warnings {
		b.WriteString(w.Error() + "\n")
	}
	if b.Len() == 0 {
		t.Fatal("loaded without error or warning")
	}
	return b.String()
}

// TestRecipeConnectionsGolden lints recipes against known connections: an
// unknown one is an error when lint sees every connection (the file and the
// store, as run does) and a warning when it sees only some.
func TestRecipeConnectionsGolden(t *testing.T) {
	c := mustCatalog(t)
	known := map[string]string{"acme": "ghl", "acme-eu": "ghl", "rr-main": "referralrock"}
	files, _ := filepath.Glob("testdata/connections/*.yaml")
	if len(files) == 0 {
		t.Fatal("no recipes in testdata/connections")
	}
	for _, f := range files {
		for _, all := range []bool{true, false} {
			name, suffix := filepath.Base(f)+"/all", ".golden"
			if !all {
				name, suffix = filepath.Base(f)+"/some", ".some.golden"
			}
			t.Run(name, func(t *testing.T) {
				l := &catalog.RecipeLoader{Catalog: c, Connections: known, AllConnections: all}
				golden(t, strings.TrimSuffix(f, ".yaml")+suffix, lintReport(t, l, f))
			})
		}
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
