package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/engine/recipestore"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// TestStoredRecipes: a recipe stored while the engine runs is in force for
// every tenant within seconds; removing it takes it out; a stored recipe
// named like a recipe file is refused with the file and line, and the
// running recipes stay.
func TestStoredRecipes(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newTenantFixture(t, "A", "B")
	for name := range tenantRecipes {
		if name != "welcome.yaml" {
			os.Remove(filepath.Join(f.dir, name))
		}
	}
	cli := tenant.NewStore(rdb, prefix)
	f.put(t, cli, "A", "pro")
	f.put(t, cli, "B", "free")
	eng := f.engine(t, rdb, prefix)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	count := func(recipe string) int {
		n := 0
		for _, s := range eng.Registry().All() {
			if s.Recipe.Name == recipe {
				n++
			}
		}
		return n
	}
	st := recipestore.New(rdb, prefix)
	if err := st.Put(ctx, "tag-plan", []byte(tenantRecipes["tag-plan.yaml"])); err != nil {
		t.Fatal(err)
	}
	until(t, 5*time.Second, "stored recipe in force", func() bool { return count("tag-plan") == 1 }) // plan=pro: A only
	if err := st.Put(ctx, "welcome", []byte(tenantRecipes["welcome.yaml"])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if count("welcome") != 2 || count("tag-plan") != 1 {
		t.Fatalf("after a refused reload: welcome %d, tag-plan %d", count("welcome"), count("tag-plan"))
	}
	err := eng.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "welcome.yaml:1") || !strings.Contains(err.Error(), "also a stored recipe") {
		t.Fatalf("reload with a name both stored and in a file: %v", err)
	}
	if err := st.Remove(ctx, "welcome"); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(ctx, "tag-plan"); err != nil {
		t.Fatal(err)
	}
	until(t, 5*time.Second, "stored recipe out of force", func() bool { return count("tag-plan") == 0 && count("welcome") == 2 })
}
