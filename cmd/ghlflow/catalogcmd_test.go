package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestCatalogListJSON(t *testing.T) {
	c, ok := loadCatalog()
	if !ok {
		t.Fatal("catalog does not load")
	}
	var out bytes.Buffer
	if code := catalogList(&out, c, []string{"--app", "ghl", "--format", "json"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var ops []map[string]any
	if err := json.Unmarshal(out.Bytes(), &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 126 {
		t.Fatalf("%d ops", len(ops))
	}
	for _, k := range []string{"id", "app", "category", "name", "kind", "method", "path", "scope", "version"} {
		if _, ok := ops[0][k]; !ok {
			t.Errorf("json has no %q: %v", k, ops[0])
		}
	}
	out.Reset()
	if code := catalogList(&out, c, []string{"--kind", "sideways"}); code != 2 {
		t.Errorf("bad --kind exit %d", code)
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
	if code := runRecipe(ctx, append([]string{"lint"}, shipped...)); code != 0 {
		t.Errorf("shipped recipes: exit %d", code)
	}
	stderr := os.Stderr
	os.Stderr, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer func() { os.Stderr = stderr }()
	if code := runRecipe(ctx, []string{"lint", "../../catalog/testdata/recipes/unknown-op.yaml"}); code != 1 {
		t.Errorf("broken recipe: exit %d", code)
	}
}
