package apikey_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// TestKeys: the admin token is an operator key; made keys work until
// revoked; a tenant's keys go with RevokeTenant; near misses do not work.
func TestKeys(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	s := apikey.New(rdb, prefix, " boot-token-0123456789 ")
	for _, tc := range []struct {
		key      string
		operator bool
		err      bool
	}{
		{"boot-token-0123456789", true, false},
		{"boot-token-012345678", false, true},
		{"", false, true},
	} {
		k, err := s.Lookup(ctx, tc.key)
		if (err != nil) != tc.err || (err == nil && k.Operator() != tc.operator) {
			t.Errorf("lookup %q: %+v %v", tc.key, k, err)
		}
	}
	if _, err := apikey.New(rdb, prefix, "").Lookup(ctx, "boot-token-0123456789"); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("the admin token works without being configured: %v", err)
	}
	op, opKey, err := s.Create(ctx, "", "ops")
	if err != nil {
		t.Fatal(err)
	}
	ten, _, err := s.Create(ctx, "acme", "acme's")
	if err != nil {
		t.Fatal(err)
	}
	if k, err := s.Lookup(ctx, op); err != nil || !k.Operator() || k.ID != opKey.ID {
		t.Fatalf("operator key: %+v %v", k, err)
	}
	if k, err := s.Lookup(ctx, ten); err != nil || k.Tenant != "acme" {
		t.Fatalf("tenant key: %+v %v", k, err)
	}
	if _, err := s.Lookup(ctx, ten[:len(ten)-1]+"x"); err == nil {
		t.Fatal("a changed key works")
	}
	if err := s.Revoke(ctx, "other", opKey.ID); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("another tenant revoked an operator key: %v", err)
	}
	if n, err := s.RevokeTenant(ctx, "acme"); err != nil || n != 1 {
		t.Fatalf("revoke tenant: %d %v", n, err)
	}
	if _, err := s.Lookup(ctx, ten); err == nil {
		t.Fatal("a removed tenant's key works")
	}
	if err := s.Revoke(ctx, "", opKey.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, op); err == nil {
		t.Fatal("a revoked key works")
	}
}
