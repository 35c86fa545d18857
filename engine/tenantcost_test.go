package engine_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// commandCounter counts the Redis commands a client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// TestAddingATenantCostsItsSubscriptions: an engine that already runs 100
// or 1,000 tenants puts a new tenant in force with the same number of Redis
// commands, a few per subscription of the new tenant: adding a tenant costs
// O(its subscriptions), not a reload of everything.
func TestAddingATenantCostsItsSubscriptions(t *testing.T) {
	const recipes = 3
	dir := t.TempDir()
	for i := range recipes {
		text := fmt.Sprintf("name: r%d\ntrigger: {op: ghl.contacts.search, connection: ghl, every: 5m}\n"+
			"steps:\n  - op: ghl.contacts.tags.add\n    input: {contactId: \"{{ .trigger.id }}\", tags: [t%d]}\n", i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%d.yaml", i)), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cat := testCatalog(t)
	conns, _ := auth.NewStatic()
	cost := func(tenants int) int64 {
		rdb, prefix := testRedis(t)
		ctx := context.Background()
		st := tenant.NewStore(rdb, prefix)
		for i := range tenants {
			id := fmt.Sprintf("t%05d", i)
			if err := st.Put(ctx, &tenant.Tenant{ID: id, Connections: map[string]string{"ghl": "ghl-" + id}}); err != nil {
				t.Fatal(err)
			}
		}
		counted := redis.NewClient(rdb.Options())
		defer counted.Close()
		counter := &commandCounter{}
		counted.AddHook(counter)
		eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat, Connections: conns}),
			Redis: counted, Recipes: []string{dir}, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.RefreshTenants(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(eng.Registry().All()); n != tenants*recipes {
			t.Fatalf("%d subscriptions for %d tenants", n, tenants)
		}
		if err := st.Put(ctx, &tenant.Tenant{ID: "newcomer", Connections: map[string]string{"ghl": "ghl-new"}}); err != nil {
			t.Fatal(err)
		}
		counter.n.Store(0)
		if n, err := eng.RefreshTenants(ctx); err != nil || n != 1 {
			t.Fatalf("refresh: %d tenants changed, %v", n, err)
		}
		if n := len(eng.Registry().All()); n != (tenants+1)*recipes {
			t.Fatalf("%d subscriptions after the newcomer", n)
		}
		return counter.n.Load()
	}
	small, large := cost(100), cost(1000)
	t.Logf("Redis commands to put one tenant of %d recipes in force: %d among 100 tenants, %d among 1,000", recipes, small, large)
	if small != large {
		t.Errorf("adding a tenant took %d commands among 100 tenants and %d among 1,000", small, large)
	}
	if large > 4*recipes+8 {
		t.Errorf("adding a tenant of %d subscriptions took %d Redis commands", recipes, large)
	}
}
