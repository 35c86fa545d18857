package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/auth"
)

// TestTenantCommands drives `ghlflow tenant` against Redis: add, label,
// pause, list, show, remove, and refuses bad arguments.
func TestTenantCommands(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Skipf("redis: %v", err)
	}
	prefix := fmt.Sprintf("tenantcli:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	flags := []string{"--redis", "redis://" + addr + "/0", "--prefix", prefix}
	// ghl-loc-1 is a static connection (its token variable unset: only
	// its id is read), rr-acme a stored one.
	conns := t.TempDir() + "/connections.yaml"
	if err := os.WriteFile(conns, []byte("connections:\n  - {id: ghl-loc-1, app: ghl, token_env: GHLFLOW_TEST_TENANT_TOKEN_UNSET}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeyring([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), auth.Connection{ID: "rr-acme", App: "referralrock", Kind: auth.KindBasic},
		auth.Credential{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	unknown := "unknown connection \"ghl-typo\" (role ghl): in neither the connection store (prefix " + prefix + ") nor " + conns +
		"\nknown connections: ghl-loc-1, rr-acme\nfix: correct the name, store the connection first ('ghlflow connect token|basic|install --name ghl-typo ...'), " +
		"name the connections file that has it (--connections FILE), or pass --allow-missing when it will be installed later"
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := tenantMain(context.Background(), append(args, flags...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	steps := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"add", "loc-1", "--name", "Acme Dental", "--label", "plan=pro", "--connection", "ghl=ghl-loc-1", "--connections", conns}, 0, "tenant loc-1 stored (connections ghl=ghl-loc-1)", ""},
		{[]string{"add", "loc-1", "--connection", "referralrock=rr-acme"}, 0, "ghl=ghl-loc-1,referralrock=rr-acme", ""},
		{[]string{"add", "loc-2", "--connection", "ghl"}, 1, "", `connection "ghl": write KEY=VALUE`},
		// A connection found nowhere is refused, saying which are known
		// and how to fix it; nothing is stored.
		{[]string{"add", "loc-2", "--connection", "ghl=ghl-typo", "--connections", conns}, 1, "", unknown},
		{[]string{"add", "loc-2", "--connection", "ghl=ghl-loc-1"}, 1, "", `unknown connection "ghl-loc-1" (role ghl): not in the connection store (prefix ` + prefix + `), and no --connections FILE names static ones`},
		{[]string{"show", "loc-2"}, 1, "", "tenant not found"},
		{[]string{"add", "loc-2", "--connection", "ghl=ghl-loc-1", "--connections", conns + ".missing"}, 1, "", "--connections: static connections: open"},
		// One still to be installed is accepted with --allow-missing.
		{[]string{"add", "loc-2", "--connection", "ghl=ghl-later", "--allow-missing"}, 0, "tenant loc-2 stored (connections ghl=ghl-later)", ""},
		{[]string{"remove", "loc-2"}, 0, "tenant loc-2 removed", ""},
		{[]string{"add", "default"}, 1, "", "built-in tenant"},
		{[]string{"label", "loc-1", "agency=x", "plan-"}, 0, "", ""},
		{[]string{"pause", "loc-1"}, 0, "tenant loc-1 is paused", ""},
		{[]string{"list"}, 0, "loc-1  Acme Dental  paused  agency=x  ghl=ghl-loc-1,referralrock=rr-acme", ""},
		{[]string{"resume", "loc-1"}, 0, "tenant loc-1 is active", ""},
		{[]string{"show", "loc-1"}, 0, "status:        active", ""},
		{[]string{"remove", "loc-1"}, 0, "tenant loc-1 removed", ""},
		{[]string{"show", "loc-1"}, 1, "", "tenant not found"},
		{[]string{"pause"}, 2, "", "usage: ghlflow tenant"},
	}
	for _, s := range steps {
		code, out, errOut := run(s.args...)
		if code != s.code || !strings.Contains(out, s.out) || !strings.Contains(errOut, s.err) {
			t.Errorf("tenant %v: code %d, out %q, err %q; want %d, %q, %q", s.args, code, out, errOut, s.code, s.out, s.err)
		}
	}
	if keys, _ := rdb.Keys(context.Background(), prefix+"tenant:*").Result(); len(keys) > 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// TestRecipeStoreCommands: recipe put checks a recipe before storing it;
// list and remove show and delete stored recipes.
func TestRecipeStoreCommands(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Skipf("redis: %v", err)
	}
	prefix := fmt.Sprintf("recipecli:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("name: bad\ntrigger: {op: ghl.nope, every: 1m}\nsteps: [{op: ghl.contacts.tags.add}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--redis", "redis://" + addr + "/0", "--prefix", prefix}
	good := "../../catalog/recipes/tenants/new-contact-note.yaml"
	steps := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"put", good}, 0, "recipe tenant-new-contact-note stored", ""},
		{[]string{"put", bad}, 1, "", `unknown operation "ghl.nope"`},
		{[]string{"list"}, 0, "tenant-new-contact-note\tghl.contacts.search every 1m, 1 step(s)", ""},
		{[]string{"remove", "tenant-new-contact-note"}, 0, "recipe tenant-new-contact-note removed", ""},
		{[]string{"remove", "tenant-new-contact-note"}, 1, "", "not found"},
	}
	for _, s := range steps {
		var out, errOut bytes.Buffer
		code := runRecipeStore(context.Background(), append(s.args, flags...), &out, &errOut)
		if code != s.code || !strings.Contains(out.String(), s.out) || !strings.Contains(errOut.String(), s.err) {
			t.Errorf("recipe %v: code %d, out %q, err %q", s.args, code, out.String(), errOut.String())
		}
	}
}
