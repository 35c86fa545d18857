package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/scheduler"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// sharedEnv is a poll env with the shared recipes: shared-a, -b and -c
// send the same search, shared-other another one.
func sharedEnv(t *testing.T) *pollEnv {
	e := newPollEnv(t)
	rs, err := catalog.LoadRecipes(e.cat, "testdata/sharedrecipes")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		s, err := engine.NewSubscription(e.cat, r)
		if err != nil {
			t.Fatal(err)
		}
		e.subs[s.ID] = s
	}
	e.poller.Shared = engine.NewSharedPages(e.rdb, strings.TrimSuffix(e.queue, "chain"))
	return e
}

// pollAt polls recipe for slot and returns its record.
func (e *pollEnv) pollAt(recipe string, slot int64) *history.Poll {
	e.t.Helper()
	rec, err := e.poller.Poll(context.Background(), e.sub(recipe).ID, slot)
	if err != nil {
		e.t.Fatalf("poll %s: %v", recipe, err)
	}
	return rec
}

// TestSharedPolls: three subscriptions of one connection asking the same
// search in the same slot make one request; each still fires every new
// item once with its own chain; a retry of the slot fires nothing again;
// another search, or another slot, asks the API again.
func TestSharedPolls(t *testing.T) {
	e := sharedEnv(t)
	searches := func() int { return e.srv.RequestCount("ghl.contacts.search", "") }
	e.addContacts(20)
	trio := []string{"shared-a", "shared-b", "shared-c"}
	for i, r := range trio {
		rec := e.pollAt(r, 100)
		if !rec.Seeded || rec.Read != 20 || (i > 0 && (rec.Shared != 1 || rec.Requests != 0)) {
			t.Fatalf("seed poll %s: %+v", r, rec)
		}
	}
	if n := searches(); n != 1 {
		t.Fatalf("%d searches for three seed polls of one slot, want 1", n)
	}
	ids := e.addContacts(5)
	for _, r := range trio {
		if rec := e.pollAt(r, 101); rec.New != 5 || rec.Enqueued != 5 {
			t.Fatalf("poll %s: %+v", r, rec)
		}
	}
	if n := searches(); n != 2 {
		t.Fatalf("%d searches after the second slot, want 2", n)
	}
	for _, r := range trio { // the slot retried
		if rec := e.pollAt(r, 101); rec.New != 0 || rec.Requests != 0 {
			t.Fatalf("retry of %s: %+v", r, rec)
		}
	}
	if rec := e.pollAt("shared-other", 101); !rec.Seeded || rec.Requests != 1 || searches() != 3 {
		t.Fatalf("another search shared a page: %+v, %d searches", rec, searches())
	}
	chains := map[string]int{}
	for _, p := range e.chains() {
		chains[p.Recipe+" "+string(p.Item)]++
	}
	perRecipe := map[string]int{}
	for k, n := range chains {
		if n != 1 {
			t.Errorf("chain %s enqueued %d times", k, n)
		}
		perRecipe[strings.Fields(k)[0]]++
	}
	for _, r := range trio {
		if perRecipe[r] != len(ids) {
			t.Errorf("%s: %d chains, want %d", r, perRecipe[r], len(ids))
		}
	}
	// Polls of one process asking at once wait for one call.
	more := e.addContacts(3)
	var wg sync.WaitGroup
	recs := make([]*history.Poll, len(trio))
	errs := make([]error, len(trio))
	for i, r := range trio {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i], errs[i] = e.poller.Poll(context.Background(), e.sub(r).ID, 102)
		}()
	}
	wg.Wait()
	for i, rec := range recs {
		if errs[i] != nil || rec.New != len(more) {
			t.Errorf("concurrent poll %s: %+v %v", trio[i], rec, errs[i])
		}
	}
	if n := searches(); n != 4 {
		t.Fatalf("%d searches after three concurrent polls, want 4", n)
	}
	// Without sharing each poll asks.
	e.poller.Shared = nil
	for _, r := range trio {
		e.pollAt(r, 103)
	}
	if n := searches(); n != 7 {
		t.Fatalf("%d searches without sharing, want 7", n)
	}
}

// TestSharedPollsPollTogether: with shared polls, the engine places the
// subscriptions that send the same request at the same moment of their
// interval, so that in every slot one of them asks the API and the others
// read that fresh page (not one fetched up to an interval earlier), and a
// new contact reaches all of them in the same slot.
func TestSharedPollsPollTogether(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	cat := testCatalog(t)
	srv, ts, _, conns := simConn(t, cat, "loc-share", sim.Config{})
	const every = 2 * time.Second
	eng, err := engine.New(engine.Config{Catalog: cat, Redis: rdb, Recipes: []string{"testdata/sharedrecipes"}, Prefix: prefix,
		Caller: transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ts.URL}), Connections: conns,
		Every: every, TickEvery: 50 * time.Millisecond, SharePolls: true, Logger: warnLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	trio := []string{"shared-a", "shared-b", "shared-c"}
	sub := func(recipe string) string { return engine.SubscriptionID(recipe, "acme") }
	polls := func(recipe string) []history.Poll {
		ps, err := eng.History.Polls(ctx, sub(recipe), 0)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	until(t, 10*time.Second, "every subscription seeded", func() bool {
		for _, r := range append(trio, "shared-other") {
			if len(polls(r)) == 0 {
				return false
			}
		}
		return true
	})
	var entries []scheduler.Entry
	for _, r := range trio {
		entries = append(entries, scheduler.Entry{ID: sub(r), Every: every})
	}
	due, err := scheduler.DueAt(ctx, rdb, prefix, entries...)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range due {
		if d.IsZero() {
			t.Fatalf("%s not scheduled", trio[i])
		}
	}
	// Their place in the interval is what must agree.
	for _, d := range due[1:] {
		if d.Sub(due[0])%every != 0 {
			t.Fatalf("the subscriptions sending one request are due at %v", due)
		}
	}
	srv.CreateContact("loc-share", map[string]any{"firstName": "Shared", "email": "shared@example.com"})
	until(t, 4*every, "the new contact fired by the three recipes", func() bool {
		return len(srv.Writes("ghl.contacts.tags.add")) >= len(trio)
	})
	// In each slot the trio asked the API once between them.
	bySlot := map[int64][2]int{} // slot -> requests, shared pages
	for _, r := range trio {
		for _, p := range polls(r) {
			c := bySlot[p.Slot]
			bySlot[p.Slot] = [2]int{c[0] + p.Requests, c[1] + p.Shared}
		}
	}
	for slot, c := range bySlot {
		if c[0]+c[1] == len(trio) && c[0] != 1 {
			t.Errorf("slot %d: %d requests and %d shared pages for the three polls, want 1 request", slot, c[0], c[1])
		}
	}
	// Each poll knows how late it started after its due time: its start
	// less its lag is the subscriptions' place in the interval (to the
	// millisecond the lag is rounded to).
	for _, r := range trio {
		for _, p := range polls(r) {
			if p.Lag <= 0 {
				t.Fatalf("%s: a scheduled poll without its lag: %+v", r, p)
			}
			off := ((p.Time.Add(-p.Lag).Sub(due[0]))%every + every) % every
			if off > 2*time.Millisecond && off < every-2*time.Millisecond {
				t.Errorf("%s: a poll at %s with lag %s was due %s off its place", r, p.Time.Format(time.StampMilli), p.Lag, off)
			}
		}
	}
	// And the three saw the new contact in the same slot.
	slots := map[int64]int{}
	for _, r := range trio {
		slots[newSlot(polls(r))]++
	}
	if len(slots) != 1 || slots[0] != 0 {
		t.Errorf("slots in which the three saw the new contact: %v", slots)
	}
}

// newSlot is the slot of the poll in ps that saw a new item (0: none).
func newSlot(ps []history.Poll) int64 {
	for _, p := range ps {
		if p.New > 0 {
			return p.Slot
		}
	}
	return 0
}

// TestSharedPollsOfACappedTenant: a tenant capped at one poll in flight
// whose three recipes send one request polls all three in the same slot
// and moment: with shared polls the cap counts the tenant's API calls, and
// only one of the polls calls.
func TestSharedPollsOfACappedTenant(t *testing.T) {
	e := sharedEnv(t)
	e.poller.TenantCap = 1
	tn := &tenant.Tenant{ID: "capped", Connections: map[string]string{"acme": "acme"}}
	trio := []string{"shared-a", "shared-b", "shared-c"}
	var subs []*engine.Subscription
	for _, r := range trio {
		s, err := engine.NewTenantSubscription(e.cat, e.sub(r).Recipe, tn)
		if err != nil {
			t.Fatal(err)
		}
		e.subs[s.ID] = s
		subs = append(subs, s)
	}
	e.addContacts(4)
	for slot := int64(200); slot < 203; slot++ {
		var wg sync.WaitGroup
		recs := make([]*history.Poll, len(subs))
		errs := make([]error, len(subs))
		for i, s := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				recs[i], errs[i] = e.poller.Poll(context.Background(), s.ID, slot)
			}()
		}
		wg.Wait()
		requests := 0
		for i, rec := range recs {
			if errs[i] != nil || rec.Skipped != "" || rec.Read != 4 {
				t.Fatalf("slot %d, %s: %+v %v", slot, trio[i], rec, errs[i])
			}
			requests += rec.Requests
		}
		if requests != 1 {
			t.Errorf("slot %d: %d requests for the three polls, want 1", slot, requests)
		}
	}
}
