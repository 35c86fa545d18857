package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/connstate"
)

const reloadRecipe = `name: %s
trigger: {op: ghl.contacts.search, connection: acme, every: %s}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: [x]}
`

func TestReloadKeepsRunningVersionOnError(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", fmt.Sprintf(reloadRecipe, "a", "1m"))
	write("b.yaml", fmt.Sprintf(reloadRecipe, "b", "5m"))
	eng := newTestEngine(t, rdb, prefix, dir)
	names := func() string {
		var out []string
		for _, s := range eng.Registry().All() {
			out = append(out, s.Recipe.Name+"="+s.Every.String())
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	if got := names(); got != "a=1m0s,b=5m0s" {
		t.Fatalf("loaded %s", got)
	}
	// A bad edit: the error names the file and line; nothing changes.
	write("b.yaml", fmt.Sprintf(reloadRecipe, "b", "5m")+"  - op: ghl.nope\n")
	err := eng.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "b.yaml:6") {
		t.Fatalf("reload error = %v", err)
	}
	if got := names(); got != "a=1m0s,b=5m0s" {
		t.Fatalf("after a bad reload %s", got)
	}
	// A good edit: b changes, a goes, c arrives; ids stay stable.
	idB := engine.SubscriptionID("b", "acme")
	write("b.yaml", fmt.Sprintf(reloadRecipe, "b", "2m"))
	os.Remove(filepath.Join(dir, "a.yaml"))
	write("c.yaml", fmt.Sprintf(reloadRecipe, "c", "1m"))
	if err := eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "b=2m0s,c=1m0s" {
		t.Fatalf("after reload %s", got)
	}
	if s, ok := eng.Registry().Get(idB); !ok || s.Every != 2*time.Minute {
		t.Fatalf("b by id: %v %v", s, ok)
	}
}

func TestRegistryPause(t *testing.T) {
	cat := testCatalog(t)
	r, err := (&catalog.RecipeLoader{Catalog: cat}).Parse("p.yaml", []byte(fmt.Sprintf(reloadRecipe, "p", "1m")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSubscription(cat, r)
	if err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry(s)
	if _, ok := reg.Get(s.ID); !ok {
		t.Fatal("subscription missing")
	}
	rdb, prefix := testRedis(t)
	pauses := engine.NewPauses(rdb, prefix, nil)
	_ = pauses.PauseConnection(context.Background(), "acme", "unauthorized: token revoked")
	if reason, ok := pauses.PausedReason("acme"); !ok || reason != "unauthorized: token revoked" {
		t.Fatalf("reason %q %v", reason, ok)
	}
	ch := &engine.Chainer{Subs: reg, Pauser: pauses}
	res := ch.Run(context.Background(), engine.ChainPayload{Sub: s.ID, Recipe: "p", ItemKey: "k", Item: []byte(`{}`)}, "t")
	if res.Status != engine.ChainPaused || res.Err == nil || !strings.Contains(res.Err.Error(), "acme is paused: unauthorized") {
		t.Fatalf("chain of a paused connection: %+v", res)
	}
}

// TestPausesAreShared: a pause met by one engine stops the subscription in
// another engine on the same Redis; its polls are recorded as skipped with
// the reason; `connect resume` (connstate's Lift) and a reload lift it
// (the connection is not in the store).
func TestPausesAreShared(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(fmt.Sprintf(reloadRecipe, "p", "1m")), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := newTestEngine(t, rdb, prefix, dir), newTestEngine(t, rdb, prefix, dir)
	id := engine.SubscriptionID("p", "acme")
	inForce := func(e *engine.Engine, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, paused := e.Pauses().PausedReason("acme"); paused != want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("subscription in force = %v, want %v", !want, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	inForce(b, true)
	if err := a.Pauses().PauseConnection(ctx, "acme", "unauthorized: token revoked"); err != nil {
		t.Fatal(err)
	}
	inForce(b, false)
	rec, err := b.Poller.Poll(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Skipped != "connection acme is paused: unauthorized: token revoked" {
		t.Fatalf("poll of a paused subscription: %+v", rec)
	}
	polls, err := b.History.Polls(ctx, id, 1)
	if err != nil || len(polls) != 1 || polls[0].Skipped != rec.Skipped {
		t.Fatalf("history %+v %v", polls, err)
	}
	if err := connstate.New(rdb, prefix).Lift(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	inForce(a, true)
	inForce(b, true)
	_ = a.Pauses().PauseConnection(ctx, "acme", "403")
	inForce(b, false)
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	inForce(a, true)
}
