package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
)

// TestParamsCoerce: trigger params convert to their inputs' types as step
// inputs do, and a param that does not convert is an error naming it.
func TestParamsCoerce(t *testing.T) {
	cat := testCatalog(t)
	for _, tc := range []struct {
		name, param string
		want        any
		err         string
	}{
		{name: "number from a template", param: `"{{ printf \"%d\" 7 }}"`, want: 7.0},
		{name: "number literal", param: `25`, want: 25},
		{name: "not a number", param: `"{{ .recipe }}"`, err: `trigger input pageLimit: "params" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "name: params\ntrigger: {op: ghl.contacts.search, connection: acme, every: 1m, params: {pageLimit: " +
				tc.param + "}}\nsteps:\n  - op: ghl.contacts.tags.add\n    input: {contactId: \"{{ .trigger.id }}\", tags: [x]}\n"
			r, err := (&catalog.RecipeLoader{Catalog: cat}).Parse("p.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			s, err := engine.NewSubscription(cat, r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Params()
			var re *actions.RenderError
			switch {
			case tc.err != "":
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
			case err != nil || got["pageLimit"] != tc.want:
				t.Fatalf("pageLimit = %#v (%T), %v; want %#v", got["pageLimit"], got["pageLimit"], err, tc.want)
			}
		})
	}
}
