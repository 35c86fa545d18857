package auth_test

import (
	"os"
	"path/filepath"
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

// TestStaticMetadataNeedsNoSecrets: the metadata of a connections file
// (id, app, kind, location, scopes) reads without the environment
// variables its entries name, which loading it to run still requires; an
// entry without any credential is refused either way.
func TestStaticMetadataNeedsNoSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unset := "GHLFLOW_TEST_UNSET_TOKEN_7F3A"
	envFile := write("env.yaml", "connections:\n"+
		"  - {id: acme, app: ghl, location_id: loc1, token_env: "+unset+", scopes: [contacts.readonly]}\n"+
		"  - {id: rr, app: referralrock, username: pub, password_env: "+unset+"}\n")
	if _, err := auth.LoadStaticConnections(envFile); err == nil || !strings.Contains(err.Error(), "environment variable "+unset+" is not set") {
		t.Fatalf("load to run: %v", err)
	}
	conns, err := auth.LoadStaticMetadata(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 2 || conns[0].ID != "acme" || conns[0].App != "ghl" || conns[0].Kind != auth.KindPrivate ||
		conns[0].LocationID != "loc1" || strings.Join(conns[0].Scopes, ",") != "contacts.readonly" ||
		conns[1].ID != "rr" || conns[1].Kind != auth.KindBasic {
		t.Fatalf("metadata %+v", conns)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"nocred.yaml", "connections:\n  - {id: acme, app: ghl}\n", "connection 1 (acme): no credential"},
		{"noapp.yaml", "connections:\n  - {id: acme, token: t}\n", "app is required"},
		{"dup.yaml", "connections:\n  - {id: acme, app: ghl, token: t}\n  - {id: acme, app: ghl, token_env: X}\n", `id "acme" is used twice`},
		{"field.yaml", "connections:\n  - {id: acme, app: ghl, token: t, locaton_id: x}\n", `unknown field "locaton_id"`},
	} {
		if _, err := auth.LoadStaticMetadata(write(tc.name, tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
