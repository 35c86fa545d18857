package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/auth"
)

// TestRecipeLintScopes: lint warns (and still exits 0) when a recipe needs a
// scope its connection was not granted, whether the connection comes from a
// static file or from the connection store in Redis; it fails when the
// connection is of the wrong app.
func TestRecipeLintScopes(t *testing.T) {
	e := newE2E(t)
	recipe := "../../catalog/recipes/new-contact-welcome-task.yaml"
	lint := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(ghlflowBin(t), append([]string{"recipe", "lint"}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	readOnly := write("ro.yaml", "connections:\n  - {id: acme, app: ghl, token: t, scopes: [contacts.readonly]}\n")
	out, code := lint("--connections", readOnly, recipe)
	if code != 0 || strings.Count(out, "needs scope contacts.write, which connection acme was not granted (grant contacts.write to its token "+
		"where the token is made, then add it to the scopes: list of acme in the connections file)") != 2 ||
		!strings.Contains(out, "new-contact-welcome-task.yaml:") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	full := write("full.yaml", "connections:\n  - {id: acme, app: ghl, token: t, scopes: [contacts.readonly, contacts.write]}\n")
	if out, code := lint("--connections", full, recipe); code != 0 || strings.Contains(out, "warning") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	wrongApp := write("wrong.yaml", "connections:\n  - {id: acme, app: referrizer, token: t}\n")
	if out, code := lint("--connections", wrongApp, recipe); code != 1 || !strings.Contains(out, "acme") {
		t.Fatalf("wrong app: exit %d:\n%s", code, out)
	}

	// The same through the connection store.
	keys, err := auth.NewKeyring([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: e.rdb, Prefix: e.prefix, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Put(ctx, auth.Connection{ID: "acme", App: "ghl", Kind: auth.KindOAuth, LocationID: e.loc,
		Scopes: []string{"contacts.readonly"}, Status: auth.StatusOK}, auth.Credential{AccessToken: "a", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Delete(ctx, "acme") })
	out, code = lint("--redis", e.redis, "--prefix", e.prefix, recipe)
	if code != 0 || strings.Count(out, "which connection acme was not granted (install it again asking for contacts.write: "+
		"'ghlflow connect install --name acme --recipes ...')") != 2 {
		t.Fatalf("store: exit %d:\n%s", code, out)
	}
}

// TestRecipeLintNeedsNoSecrets: lint checks a connections file whose
// token_env and password_env variables are not set (it reads ids, apps,
// locations and scopes, never the secrets) and still finds a connection
// lacking a scope; run refuses the same file, naming the variable.
func TestRecipeLintNeedsNoSecrets(t *testing.T) {
	e := newE2E(t)
	unset := "GHLFLOW_TEST_LINT_TOKEN_UNSET"
	conns := filepath.Join(t.TempDir(), "conns.yaml")
	body := "connections:\n  - {id: acme, app: ghl, location_id: " + e.loc + ", token_env: " + unset + ", scopes: [contacts.readonly]}\n" +
		"  - {id: rr, app: referralrock, username: pub, password_env: " + unset + "}\n"
	if err := os.WriteFile(conns, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, unset+"=") {
			env = append(env, kv)
		}
	}
	exitOf := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	cmd := exec.Command(ghlflowBin(t), "recipe", "lint", "--connections", conns, "../../catalog/recipes/new-contact-welcome-task.yaml")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if code := exitOf(err); code != 0 || strings.Contains(string(out), "is not set") ||
		!strings.Contains(string(out), "needs scope contacts.write, which connection acme was not granted") {
		t.Fatalf("lint: exit %d:\n%s", code, out)
	}
	run := e.runNoKey("--connections", conns)
	run.Env = append(env, auth.EnvSecretKey+"=", auth.EnvSecretKeyFile+"=")
	out, err = run.CombinedOutput()
	if code := exitOf(err); code == 0 || !strings.Contains(string(out), "token_env: environment variable "+unset+" is not set") {
		t.Fatalf("run: exit %d:\n%s", code, out)
	}
}
