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
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
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
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", fmt.Sprintf(reloadRecipe, "a", "1m"))
	write("b.yaml", fmt.Sprintf(reloadRecipe, "b", "5m"))
	conns, _ := auth.NewStatic()
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat, Connections: conns}),
		Redis: rdb, Recipes: []string{dir}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
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
	err = eng.Reload(ctx)
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
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
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
	_ = reg.PauseConnection(context.Background(), "acme", "unauthorized: token revoked")
	if _, ok := reg.Get(s.ID); ok {
		t.Fatal("a paused subscription is still in force")
	}
	if reason, ok := reg.PausedReason("acme"); !ok || reason != "unauthorized: token revoked" {
		t.Fatalf("reason %q %v", reason, ok)
	}
	ch := &engine.Chainer{Subs: reg}
	res := ch.Run(context.Background(), engine.ChainPayload{Sub: s.ID, Recipe: "p", ItemKey: "k", Item: []byte(`{}`)}, "t")
	if res.Status != engine.ChainPaused || res.Err == nil || !strings.Contains(res.Err.Error(), "acme is paused: unauthorized") {
		t.Fatalf("chain of a paused connection: %+v", res)
	}
}
