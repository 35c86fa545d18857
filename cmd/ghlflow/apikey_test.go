package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// TestAPIKeyCommands: create prints a key once and stores only its hash;
// list shows ids, never keys; revoke makes a key stop working.
func TestAPIKeyCommands(t *testing.T) {
	rdb, prefix := redistest.New(t)
	flags := []string{"--redis", "redis://" + redistest.Addr() + "/0", "--prefix", prefix}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := apikeyMain(context.Background(), append(args, flags...), &out, &errOut)
		return code, strings.TrimSpace(out.String()), errOut.String()
	}
	code, op, msg := run("create", "--name", "ops")
	if code != 0 || !strings.HasPrefix(op, apikey.Prefix) || !strings.Contains(msg, "operator") {
		t.Fatalf("create: %d %q %q", code, op, msg)
	}
	code, ten, _ := run("create", "--tenant", "acme")
	if code != 0 {
		t.Fatalf("create tenant key: %d", code)
	}
	store := apikey.New(rdb, prefix, "")
	k, err := store.Lookup(context.Background(), ten)
	if err != nil || k.Tenant != "acme" {
		t.Fatalf("lookup: %+v %v", k, err)
	}
	vals, _ := rdb.HGetAll(context.Background(), prefix+"{apikeys}").Result()
	for h, v := range vals {
		if strings.Contains(h+v, op) || strings.Contains(h+v, ten) {
			t.Fatal("a key is stored in clear")
		}
	}
	code, list, _ := run("list")
	if code != 0 || !strings.Contains(list, k.ID) || !strings.Contains(list, "(operator)") || strings.Contains(list, ten) {
		t.Fatalf("list: %q", list)
	}
	if code, _, _ := run("revoke", k.ID); code != 0 {
		t.Fatalf("revoke: %d", code)
	}
	if _, err := store.Lookup(context.Background(), ten); err == nil {
		t.Fatal("a revoked key still works")
	}
	if code, _, _ := run("revoke", "nosuchkey"); code != 1 {
		t.Fatalf("revoke unknown: %d", code)
	}
}
