package auth_test

import (
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/auth"
)

// TestStaticConnectionsFileStrict reads connections files the way recipes
// are read: mistakes are errors with file:line:col, never ignored.
func TestStaticConnectionsFileStrict(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"testdata/unknown-field.yaml", `testdata/unknown-field.yaml:4:5: unknown field "locaton_id" (did you mean "location_id"?)`},
		{"testdata/syntax.yaml", `testdata/syntax.yaml:3:11: invalid YAML: did not find expected ',' or ']'`},
		{"testdata/wrong-type.yaml", `testdata/wrong-type.yaml:4:12: wrong type: list where text is expected`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := auth.LoadStaticConnections(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant it to say %s", err, tc.want)
			}
		})
	}
	s, err := auth.LoadStaticConnections("testdata/ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := s.List(); len(l) != 1 || l[0].LocationID != "loc1" || l[0].Scopes[0] != "contacts.readonly" {
		t.Fatalf("loaded %+v", l)
	}
}
