package auth_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
)

// TestShortLivedTokensRefreshOncePerLifetime: with tokens that live a few
// seconds (the refresh-ahead default is 5 minutes), two engines resolving
// one OAuth connection all the time renew it about once per token lifetime,
// at two thirds of it, and always get a token that has not expired.
func TestShortLivedTokensRefreshOncePerLifetime(t *testing.T) {
	if testing.Short() {
		t.Parallel() // it mostly waits; make test runs it alone
	}
	const ttl, run = 4 * time.Second, 9 * time.Second
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{TokenTTL: ttl})
	tl := &tokenLog{next: srv}
	hs := httptest.NewServer(tl)
	defer hs.Close()
	app, err := auth.NewOAuthApp(cat.App("ghl"), hs.URL, "sim-client", "sim-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	rdb := newRedis(t)
	prefix := testPrefix(t, rdb)
	keys := testKeyring(t, keyA)
	engines := []*auth.Store{newStore(t, rdb, prefix, keys, app, nil), newStore(t, rdb, prefix, keys, app, nil)}
	ctx := context.Background()
	srv.AddLocation("loc-short")
	tok := srv.IssueToken(sim.TokenSpec{LocationID: "loc-short"})
	if err := engines[0].Put(ctx, auth.Connection{ID: "short", App: "ghl", Kind: auth.KindOAuth, LocationID: "loc-short"},
		auth.Credential{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt, IssuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(run)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var calls int
	var problems []string
	for _, store := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				r, err := store.Resolve(ctx, "short")
				mu.Lock()
				calls++
				switch {
				case err != nil:
					problems = append(problems, err.Error())
				case !r.Cred.ExpiresAt.After(time.Now()):
					problems = append(problems, "resolved an expired token")
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	refreshes, _ := tl.snapshot()
	// The simulator answers expires_in one second short, as GHL does
	// (86399): a token lives 3 s and is used for two thirds of that.
	use := (ttl - time.Second) * 2 / 3
	lo, hi := int(run/use)-2, int(run/use)+1
	t.Logf("%d resolves, %d token calls in %s with %s tokens", calls, len(refreshes), run, ttl)
	if len(refreshes) < lo || len(refreshes) > hi {
		t.Fatalf("%d token calls, want %d to %d", len(refreshes), lo, hi)
	}
}
