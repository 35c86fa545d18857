package catalog_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

// FuzzRecipe feeds arbitrary bytes to the recipe parser and validator, and
// renders what validates: neither may panic or hang, and a failure must be
// catalog.Errors with a file name.
func FuzzRecipe(f *testing.F) {
	c := mustCatalog(f)
	for _, pat := range []string{"recipes/*.yaml", "testdata/recipes/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("name: x\ntrigger: {op: ghl.contacts.search, connection: a, every: 1m}\nsteps: [{op: ghl.contacts.tags.add, input: {contactId: '{{ .steps.0.x | json }}', tags: [a]}}]"))
	l := &catalog.RecipeLoader{Catalog: c}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := l.Parse("fuzz.yaml", data)
		if err != nil {
			es, ok := err.(catalog.Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error of type %T: %v", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error without place or message: %#v", e)
				}
			}
			return
		}
		data2 := map[string]any{"trigger": map[string]any{"id": "x"}, "steps": []any{map[string]any{"id": "y"}}}
		if r.Filter != nil {
			_, _ = r.Filter.Render(data2)
		}
		for _, s := range r.Steps {
			for _, v := range s.Input {
				_, _ = v.Render(data2)
			}
		}
	})
}
