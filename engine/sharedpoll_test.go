package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/history"
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
