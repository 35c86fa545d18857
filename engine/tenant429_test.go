package engine_test

import (
	"net/http"
	"testing"
	"time"
)

// TestRateLimitedTenantDoesNotHoldBackOthers: B's location has spent its
// API budget (the simulator answers 429), so B's polls wait; A's new
// contact still fires A's chains, and A's location never sees a 429.
func TestRateLimitedTenantDoesNotHoldBackOthers(t *testing.T) {
	overlapInShort(t)
	f, eng := runTenantsAB(t)
	// Spend B's budget (GHL's 100 requests per 10 s) from outside ghlflow.
	for range 100 {
		req, _ := http.NewRequest(http.MethodGet, f.url+"/contacts/?locationId=loc-B", nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens["B"])
		req.Header.Set("Version", "2021-07-28")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	refused := func(loc string) int {
		n := 0
		for _, r := range f.srv.Requests() {
			if r.Op == "ghl.contacts.search" && r.Location == loc && r.Status == http.StatusTooManyRequests {
				n++
			}
		}
		return n
	}
	until(t, 10*time.Second, "a poll of B answered 429", func() bool { return refused("loc-B") > 0 })
	aSubs := map[string]string{}
	for _, s := range eng.Registry().Tenant("A") {
		aSubs[s.ID] = s.Recipe.Name
	}
	f.srv.CreateContact("loc-A", map[string]any{"firstName": "Ann", "email": "ann@example.com"})
	took := until(t, 8*time.Second, "A's chains while B is rate limited", func() bool { return len(f.completed(aSubs)) == 3 })
	t.Logf("A's 3 chains (one per contact recipe) completed %s after its contact, while B's polls met %d 429s", took.Round(time.Millisecond), refused("loc-B"))
	if refused("loc-A") != 0 {
		t.Errorf("A's location answered %d 429s", refused("loc-A"))
	}
}
