package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// TestMoveLegacyKeys: connections and pauses stored by earlier versions
// (no hash tags, status in the metadata, the engine's pause hash) are
// found, with their state, after MoveLegacyKeys.
func TestMoveLegacyKeys(t *testing.T) {
	ctx := context.Background()
	client := newRedis(t)
	prefix := testPrefix(t, client)
	store := newStore(t, client, prefix, testKeyring(t, keyA), nil, nil)
	if err := store.Put(ctx, auth.Connection{ID: "old", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc1"},
		auth.Credential{AccessToken: "pit-old"}); err != nil {
		t.Fatal(err)
	}
	// Lay the connection out as an earlier version did.
	keys := rdb.NewKeys(prefix)
	meta, _ := json.Marshal(auth.Connection{ID: "old", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc1",
		Status: auth.StatusNeedsReauth, Reason: "refused"})
	client.HSet(ctx, keys.Conn("old"), "meta", meta)
	client.Rename(ctx, keys.Conn("old"), keys.LegacyConn("old"))
	client.Set(ctx, keys.LegacyConnFence("old"), 3, 0)
	client.Del(ctx, keys.Conns())
	client.SAdd(ctx, keys.LegacyConns(), "old")
	client.HSet(ctx, keys.LegacyPauses(), "static", "unauthorized")
	if list, _ := store.List(ctx); len(list) != 0 {
		t.Fatalf("the old layout is read without moving: %v", list)
	}

	n, err := auth.MoveLegacyKeys(ctx, client, prefix)
	if err != nil || n != 1 {
		t.Fatalf("moved %d: %v", n, err)
	}
	c, err := store.Get(ctx, "old")
	if err != nil || c.Status != auth.StatusNeedsReauth || c.Reason != "refused" {
		t.Fatalf("moved connection: %+v %v", c, err)
	}
	if _, err := store.Resolve(ctx, "old"); !errors.Is(err, auth.ErrNeedsReauth) {
		t.Fatalf("resolve: %v", err)
	}
	if list, _ := store.List(ctx); len(list) != 1 {
		t.Fatalf("list: %v", list)
	}
	if f, _ := client.Get(ctx, keys.ConnFence("old")).Int(); f != 3 {
		t.Fatalf("fence %d", f)
	}
	if st, _ := connstate.New(client, prefix).Get(ctx, "static"); st.Status != connstate.NeedsReauth || st.Reason != "unauthorized" {
		t.Fatalf("moved pause: %+v", st)
	}
	for _, k := range []string{keys.LegacyConns(), keys.LegacyConn("old"), keys.LegacyConnFence("old"), keys.LegacyPauses()} {
		if client.Exists(ctx, k).Val() != 0 {
			t.Errorf("%s is still there", k)
		}
	}
	if n, err := auth.MoveLegacyKeys(ctx, client, prefix); err != nil || n != 0 {
		t.Fatalf("second run moved %d: %v", n, err)
	}
}
