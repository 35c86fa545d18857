package connstate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// TestOneRecord: the engine's pause, the store's status and `connect`'s
// view are one record: what one writes, the others read.
func TestOneRecord(t *testing.T) {
	ctx := context.Background()
	client, prefix := redistest.New(t)
	keys, err := auth.ParseKeys(auth.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := auth.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: client, Prefix: prefix, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	states := connstate.New(client, prefix)
	pauses := engine.NewPauses(client, prefix, nil)
	put := func() {
		t.Helper()
		if err := store.Put(ctx, auth.Connection{ID: "stored", App: "ghl", Kind: auth.KindPrivate, LocationID: "loc1"},
			auth.Credential{AccessToken: "pit-1"}); err != nil {
			t.Fatal(err)
		}
	}
	put()
	if st, err := states.Get(ctx, "stored"); err != nil || !st.InForce() {
		t.Fatalf("a new connection: %+v %v", st, err)
	}

	// The engine pauses a stored connection: the store refuses it with the
	// engine's reason, and the first reason stays.
	if err := pauses.PauseConnection(ctx, "stored", "unauthorized: token revoked"); err != nil {
		t.Fatal(err)
	}
	_ = pauses.PauseConnection(ctx, "stored", "a later failure")
	c, err := store.Get(ctx, "stored")
	if err != nil || c.Status != auth.StatusNeedsReauth || c.Reason != "unauthorized: token revoked" {
		t.Fatalf("store view of the engine's pause: %+v %v", c, err)
	}
	if _, err := store.Resolve(ctx, "stored"); !errors.Is(err, auth.ErrNeedsReauth) {
		t.Fatalf("resolve of a paused connection: %v", err)
	}
	if st, _ := states.Get(ctx, "stored"); st.Since.IsZero() {
		t.Fatalf("no time on %+v", st)
	}

	// A reload lifts the pause of a static connection, not of a stored one.
	_ = pauses.PauseConnection(ctx, "static", "unauthorized")
	if n, err := states.LiftUnstored(ctx); err != nil || n != 1 {
		t.Fatalf("lift unstored: %d %v", n, err)
	}
	all, err := states.All(ctx)
	if err != nil || len(all) != 1 || all["stored"].Status != connstate.NeedsReauth {
		t.Fatalf("after a reload: %+v %v", all, err)
	}

	// A new credential puts it back in force everywhere.
	put()
	if r, err := store.Resolve(ctx, "stored"); err != nil || r.Conn.Status != auth.StatusOK {
		t.Fatalf("after a new token: %+v %v", r, err)
	}
	if all, _ := states.All(ctx); len(all) != 0 {
		t.Fatalf("states left: %+v", all)
	}

	// `connect pause` and `connect resume` write the same record.
	if err := store.SetStatus(ctx, "stored", auth.StatusPaused, "billing hold"); err != nil {
		t.Fatal(err)
	}
	if st, _ := states.Get(ctx, "stored"); st.Status != connstate.Paused || st.Reason != "billing hold" {
		t.Fatalf("paused: %+v", st)
	}
	if err := store.SetStatus(ctx, "stored", auth.StatusOK, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := states.Get(ctx, "stored"); !st.InForce() {
		t.Fatalf("resumed: %+v", st)
	}
	if err := store.SetStatus(ctx, "nobody", auth.StatusPaused, "x"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("pause of an unknown connection: %v", err)
	}
	if err := states.Set(ctx, "stored", "broken", "x"); err == nil {
		t.Fatal("an unknown status was stored")
	}

	// Removing the connection removes its state.
	_ = store.SetStatus(ctx, "stored", auth.StatusPaused, "x")
	if err := store.Delete(ctx, "stored"); err != nil {
		t.Fatal(err)
	}
	if all, _ := states.All(ctx); len(all) != 0 {
		t.Fatalf("states left after delete: %+v", all)
	}
}
