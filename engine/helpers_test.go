package engine_test

import (
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// testRedis returns the shared test client and a prefix of the test's own,
// deleted afterwards with the asynq queues named after it.
func testRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	return redistest.New(t)
}

// testCatalog loads the embedded catalog.
func testCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// newTestEngine builds an engine over the recipes in dir, with no
// connections (the tests that use it make no API call).
func newTestEngine(t testing.TB, rdb redis.UniversalClient, prefix, dir string) *engine.Engine {
	t.Helper()
	cat := testCatalog(t)
	conns, _ := auth.NewStatic()
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat, Connections: conns}),
		Redis: rdb, Recipes: []string{dir}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// simConn starts a simulator with location loc and returns it, its HTTP
// server, a location token and a static connection "acme" holding it.
func simConn(t testing.TB, cat *catalog.Catalog, loc string, cfg sim.Config) (*sim.Server, *httptest.Server, sim.Token, *auth.Static) {
	t.Helper()
	srv := sim.New(cat, cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	srv.AddLocation(loc)
	tok := srv.IssueToken(sim.TokenSpec{LocationID: loc, Private: true})
	conns, err := auth.NewStatic(auth.StaticEntry{ID: "acme", App: "ghl", LocationID: loc, Token: tok.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	return srv, ts, tok, conns
}

// overlapInShort lets an end-to-end test, which mostly waits on polls and
// chains, run beside the others in the fast loop (-short). `make test` runs
// them one at a time, so their time bounds are met on a loaded machine too.
func overlapInShort(t *testing.T) {
	if testing.Short() {
		t.Parallel()
	}
}
