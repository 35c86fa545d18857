package catalog_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/ghlflow/ghlflow/catalog"
)

// recipeSchema compiles the catalog's recipe JSON Schema.
func recipeSchema(t *testing.T, c *catalog.Catalog) *jsonschema.Schema {
	t.Helper()
	raw, err := json.Marshal(c.RecipeSchema())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	comp := jsonschema.NewCompiler()
	if err := comp.AddResource("recipe.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := comp.Compile("recipe.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schemaCheck validates a YAML recipe file against s; nil when valid. A
// file that is not YAML is reported as such.
func schemaCheck(t *testing.T, s *jsonschema.Schema, data []byte) (error, bool) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err, false
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst), true
}

// TestRecipeSchemaAgreesWithLint validates every shipped, valid and golden
// recipe against the JSON Schema: what lint accepts the schema accepts, and
// the structural mistakes lint reports (unknown fields and operations,
// wrong kinds, literals of the wrong type, enum or maximum) the schema
// reports too.
func TestRecipeSchemaAgreesWithLint(t *testing.T) {
	c := mustCatalog(t)
	s := recipeSchema(t, c)
	schemaRejects := []string{"unknown-fields.yaml", "unknown-op.yaml", "action-as-trigger.yaml", "trigger-as-step.yaml",
		"interval-type.yaml", "literal-enum.yaml", "literal-max.yaml", "literal-max-limit.yaml", "literal-type.yaml"}
	var files []string
	for _, pat := range []string{"recipes/*.yaml", "recipes/*/*.yaml", "testdata/valid/*.yaml", "testdata/recipes/*.yaml", "testdata/connections/*.yaml"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	if len(files) < 25 {
		t.Fatalf("only %d recipes", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, lintErr := (&catalog.RecipeLoader{Catalog: c}).Parse(f, data)
			schemaErr, isYAML := schemaCheck(t, s, data)
			if !isYAML {
				if lintErr == nil {
					t.Fatalf("lint accepts what is not YAML: %v", schemaErr)
				}
				return
			}
			if lintErr == nil && schemaErr != nil {
				t.Fatalf("lint accepts it, the schema does not:\n%v", schemaErr)
			}
			if slices.Contains(schemaRejects, filepath.Base(f)) && schemaErr == nil {
				t.Fatalf("lint reports a structural mistake the schema accepts:\n%v", lintErr)
			}
		})
	}
}

// TestRecipeRequiredFields removes each field the schema requires from a
// valid recipe: lint refuses every one of them too.
func TestRecipeRequiredFields(t *testing.T) {
	c := mustCatalog(t)
	data, err := os.ReadFile("testdata/valid/every-1m30s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&catalog.RecipeLoader{Catalog: c}).Parse("valid.yaml", data); err != nil {
		t.Fatalf("the valid recipe: %v", err)
	}
	// Every required path of the schema: [] is the root, "*" a list item.
	var paths [][]string
	var walk func(s map[string]any, path []string)
	walk = func(s map[string]any, path []string) {
		req, _ := s["required"].([]any)
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			ps := p.(map[string]any)
			sub := append(slices.Clone(path), name)
			if slices.Contains(req, any(name)) {
				paths = append(paths, sub)
			}
			walk(ps, sub)
			if items, ok := ps["items"].(map[string]any); ok {
				walk(items, append(sub, "*"))
			}
		}
	}
	walk(c.RecipeSchema(), nil)
	if len(paths) < 6 {
		t.Fatalf("required paths: %v", paths)
	}
	for _, p := range paths {
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		remove(doc, p)
		out, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (&catalog.RecipeLoader{Catalog: c}).Parse("without.yaml", out); err == nil {
			t.Errorf("lint accepts the recipe without %v", p)
		}
	}
}

// remove deletes the field at path from v ("*" is every item of a list).
func remove(v any, path []string) {
	switch x := v.(type) {
	case map[string]any:
		if len(path) == 1 {
			delete(x, path[0])
			return
		}
		remove(x[path[0]], path[1:])
	case []any:
		for _, e := range x {
			remove(e, path[1:])
		}
	}
}
