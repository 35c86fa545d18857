package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

func TestCatalogListJSON(t *testing.T) {
	c, ok := loadCatalog()
	if !ok {
		t.Fatal("catalog does not load")
	}
	var out bytes.Buffer
	if code := catalogList(&out, c, catalog.Filter{App: "ghl"}, "json"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var ops []map[string]any
	if err := json.Unmarshal(out.Bytes(), &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 128 {
		t.Fatalf("%d ops", len(ops))
	}
	for _, k := range []string{"id", "app", "category", "name", "kind", "method", "path", "scope", "version"} {
		if _, ok := ops[0][k]; !ok {
			t.Errorf("json has no %q: %v", k, ops[0])
		}
	}
	out.Reset()
	stderr := os.Stderr
	os.Stderr, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer func() { os.Stderr = stderr }()
	for _, f := range []catalog.Filter{{Kind: "sideways"}, {App: "nope"}, {Category: "nope"}, {App: "referrizer", Category: "Opportunities"}} {
		if code := catalogList(&out, c, f, "table"); code != 2 {
			t.Errorf("%+v: exit %d, want 2", f, code)
		}
	}
	out.Reset()
	if code := catalogList(&out, c, catalog.Filter{Category: "opportunities"}, "table"); code != 0 || !bytes.Contains(out.Bytes(), []byte("ghl.opportunities.search")) {
		t.Errorf("a known category, any case: exit %d\n%s", code, out.String())
	}
}

func TestCatalogShow(t *testing.T) {
	c, _ := loadCatalog()
	var out bytes.Buffer
	if code := catalogShow(&out, c, "ghl.contacts.search"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"POST https://services.leadconnectorhq.com/contacts/search", "contacts.readonly", "Version: 2021-07-28", "paging", "example:"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("show lacks %q:\n%s", want, out.String())
		}
	}
	if code := catalogShow(&out, c, "ghl.contacts.serch"); code != 1 {
		t.Errorf("unknown op exit %d", code)
	}
}

func TestRecipeLintExitCodes(t *testing.T) {
	ctx := context.Background()
	shipped, _ := filepath.Glob("../../catalog/recipes/*.yaml")
	packs, _ := filepath.Glob("../../catalog/recipes/*/*.yaml")
	shipped = append(shipped, packs...)
	if len(shipped) == 0 {
		t.Fatal("no shipped recipes")
	}
	stdout := os.Stdout
	os.Stdout, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer func() { os.Stdout = stdout }()
	if code := execute(ctx, root(), "ghlflow", append([]string{"recipe", "lint"}, shipped...), os.Stdout, os.Stderr); code != 0 {
		t.Errorf("shipped recipes: exit %d", code)
	}
	stderr := os.Stderr
	os.Stderr, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer func() { os.Stderr = stderr }()
	if code := execute(ctx, root(), "ghlflow", []string{"recipe", "lint", "../../catalog/testdata/recipes/unknown-op.yaml"}, os.Stdout, os.Stderr); code != 1 {
		t.Errorf("broken recipe: exit %d", code)
	}
}
