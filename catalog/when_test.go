package catalog_test

import (
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

// whenRecipe is a recipe whose step 1 has the when: given.
func whenRecipe(when string) string {
	return `name: find-then-create
trigger: {op: ghl.contacts.search, connection: ghl, every: 1m}
steps:
  - op: referrizer.contacts.find
    input: {email: "{{ .trigger.email }}"}
  - op: referrizer.contacts.upsert
    when: '` + when + `'
    input: {email: "{{ .trigger.email }}"}
`
}

func TestStepWhenIsValidated(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, when, want string
	}{
		{"earlier step", "{{ eq (len .steps.0) 0 }}", ""},
		{"trigger field", "{{ .trigger.email }}", ""},
		{"own step", "{{ .steps.1.id }}", "r.yaml:7:11: when refers to step 1, which has not run yet at step 1"},
		{"later step", "{{ .steps.2.id }}", "r.yaml:7:11: when refers to step 2"},
		{"syntax", "{{ .trigger.email ", "r.yaml:7:11: when:"},
		{"not a template", "yes", `r.yaml:7:11: when: "yes" is not a template`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := (&catalog.RecipeLoader{Catalog: c}).Parse("r.yaml", []byte(whenRecipe(tc.when)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Steps[1].When == nil || r.Steps[0].When != nil {
					t.Fatalf("when compiled on the wrong step: %+v", r.Steps)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
