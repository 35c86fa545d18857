package triggers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/triggers"
)

func fmtAny(v any) string { return fmt.Sprint(v) }

// httpCaller makes real HTTP requests to one server with one token.
type httpCaller struct {
	cat   *catalog.Catalog
	app   *catalog.App
	base  string
	auth  string
	calls atomic.Int64
}

func (c *httpCaller) Call(ctx context.Context, conn string, op *catalog.Operation, input map[string]any) ([]byte, error) {
	c.calls.Add(1)
	app := c.app
	if app == nil {
		app = c.cat.App(op.App)
	}
	req, err := catalog.NewRequest(ctx, app, op, c.base, input)
	if err != nil {
		return nil, err
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return b, nil
}

type simEnv struct {
	srv    *sim.Server
	caller *httpCaller
	loc    string
	ids    []string // contact ids in creation order
}

func newSim(t *testing.T, contacts int) *simEnv {
	t.Helper()
	cat := defaultCatalog(t)
	var tick atomic.Int64
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	srv := sim.New(cat, sim.Config{Burst: -1, Daily: -1, Now: func() time.Time {
		return start.Add(time.Duration(tick.Add(1)) * time.Second)
	}})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	loc := "locTRIGGERS000000000"
	srv.AddLocation(loc)
	e := &simEnv{srv: srv, loc: loc,
		caller: &httpCaller{cat: cat, base: ts.URL, auth: srv.IssueToken(sim.TokenSpec{LocationID: loc}).Authorization()}}
	e.add(contacts)
	return e
}

func (e *simEnv) add(n int) {
	for i := 0; i < n; i++ {
		c := e.srv.CreateContact(e.loc, map[string]any{"email": fmt.Sprintf("p%d@example.com", len(e.ids))})
		e.ids = append(e.ids, c["id"].(string))
	}
}

func keys(items []triggers.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

func TestPollSimulator(t *testing.T) {
	e := newSim(t, 250)
	cat := defaultCatalog(t)
	search := cat.MustOp("ghl.contacts.search")
	ctx := context.Background()
	asc := map[string]any{"locationId": e.loc}
	desc := map[string]any{"locationId": e.loc, "sort": []any{map[string]any{"field": "dateAdded", "direction": "desc"}}}

	t.Run("page style to the end, oldest first", func(t *testing.T) {
		res, err := triggers.Poll(ctx, e.caller, "c", search, asc, triggers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 3 || !res.End || len(res.Items) != 250 {
			t.Fatalf("pages %d end %v items %d", res.Pages, res.End, len(res.Items))
		}
		if got := strings.Join(keys(res.Items), ","); got != strings.Join(e.ids, ",") {
			t.Fatal("items not in creation order")
		}
	})
	t.Run("newest first stops at a known page", func(t *testing.T) {
		known := map[string]bool{}
		for _, id := range e.ids[:200] {
			known[id] = true
		}
		var pages int
		res, err := triggers.Poll(ctx, e.caller, "c", search, desc, triggers.Options{Limit: 50,
			Seen: func(_ context.Context, page []triggers.Item) (bool, error) {
				pages++
				for _, it := range page {
					if !known[it.Key] {
						return false, nil
					}
				}
				return true, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 2 || pages != 2 || !res.StoppedAtSeen || len(res.Items) != 100 {
			t.Fatalf("pages %d hook %d stopped %v items %d", res.Pages, pages, res.StoppedAtSeen, len(res.Items))
		}
		if got := strings.Join(keys(res.Items), ","); got != strings.Join(e.ids[150:], ",") {
			t.Fatalf("items %v", keys(res.Items)[:3])
		}
	})
	t.Run("oldest first list walks back from the end", func(t *testing.T) {
		known := map[string]bool{}
		for _, id := range e.ids[:205] {
			known[id] = true
		}
		var firsts []string
		res, err := triggers.Poll(ctx, e.caller, "c", search, asc, triggers.Options{Limit: 20,
			Seen: func(_ context.Context, page []triggers.Item) (bool, error) {
				firsts = append(firsts, page[0].Key)
				return known[page[len(page)-1].Key], nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		// Page 1 (order and total), then pages 13 (241-250), 12 (221-240),
		// 11 (201-220, reaching known items).
		if res.Pages != 4 || !res.StoppedAtSeen || len(res.Items) != 50 {
			t.Fatalf("pages %d stopped %v items %d", res.Pages, res.StoppedAtSeen, len(res.Items))
		}
		if got := strings.Join(keys(res.Items), ","); got != strings.Join(e.ids[200:], ",") {
			t.Fatal("items not the newest 50, oldest first")
		}
		if fmt.Sprint(firsts) != fmt.Sprint([]string{e.ids[249], e.ids[239], e.ids[219]}) {
			t.Fatalf("pages given to Seen start with %v", firsts)
		}
	})
	t.Run("oldest first list without a hook reads to the end", func(t *testing.T) {
		res, err := triggers.Poll(ctx, e.caller, "c", search, asc, triggers.Options{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 3 || len(res.Items) != 250 || !res.OldestFirst {
			t.Fatalf("pages %d items %d", res.Pages, len(res.Items))
		}
	})
	t.Run("page cap", func(t *testing.T) {
		res, err := triggers.Poll(ctx, e.caller, "c", search, desc, triggers.Options{Limit: 20, MaxPages: 2})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 2 || res.End || len(res.Items) != 40 {
			t.Fatalf("pages %d end %v items %d", res.Pages, res.End, len(res.Items))
		}
		if res.Items[39].Key != e.ids[249] || res.Items[0].Key != e.ids[210] {
			t.Fatal("not the newest 40, oldest first")
		}
	})
	t.Run("page cap, then on from Next", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			op     *catalog.Operation
			params map[string]any
			want   func(first, second []triggers.Item) bool
		}{
			{"page style, newest first", search, desc, func(a, b []triggers.Item) bool {
				return strings.Join(keys(a), ",") == strings.Join(e.ids[210:], ",") &&
					strings.Join(keys(b), ",") == strings.Join(e.ids[170:210], ",")
			}},
			{"cursor style", cat.MustOp("ghl.contacts.list"), map[string]any{"locationId": e.loc}, func(a, b []triggers.Item) bool {
				return len(a) == 40 && len(b) == 40 && a[0].ID == e.ids[0] && a[39].ID == e.ids[39] &&
					b[0].ID == e.ids[40] && b[39].ID == e.ids[79]
			}},
		} {
			first, err := triggers.Poll(ctx, e.caller, "c", tc.op, tc.params, triggers.Options{Limit: 20, MaxPages: 2})
			if err != nil {
				t.Fatal(err)
			}
			if first.End || first.Next == nil {
				t.Fatalf("%s: capped walk gave no Next: %+v", tc.name, first)
			}
			second, err := triggers.Poll(ctx, e.caller, "c", tc.op, tc.params,
				triggers.Options{Limit: 20, MaxPages: 2, Start: first.Next})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(first.Items, second.Items) {
				t.Fatalf("%s: first %v\nsecond %v", tc.name, keys(first.Items), keys(second.Items))
			}
		}
	})
	t.Run("cursor style with since", func(t *testing.T) {
		list := cat.MustOp("ghl.contacts.list")
		res, err := triggers.Poll(ctx, e.caller, "c", list, map[string]any{"locationId": e.loc}, triggers.Options{Limit: 40})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 7 || len(res.Items) != 250 || !res.End {
			t.Fatalf("pages %d items %d end %v", res.Pages, len(res.Items), res.End)
		}
		since := res.Items[199].Time
		res, err = triggers.Poll(ctx, e.caller, "c", list, map[string]any{"locationId": e.loc},
			triggers.Options{Limit: 40, Dedup: "cursor", Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 2 || len(res.Items) != 50 || res.Items[0].Key[strings.Index(res.Items[0].Key, ":")+1:] != e.ids[200] {
			t.Fatalf("pages %d items %d", res.Pages, len(res.Items))
		}
	})
	t.Run("search filter since, request log", func(t *testing.T) {
		all, err := triggers.Poll(ctx, e.caller, "c", search, asc, triggers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.srv.ResetLogs()
		res, err := triggers.Poll(ctx, e.caller, "c", search, desc,
			triggers.Options{Dedup: "cursor", Since: all.Items[244].Time})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 1 || len(res.Items) != 5 {
			t.Fatalf("pages %d items %d", res.Pages, len(res.Items))
		}
		reqs := e.srv.Requests()
		if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"operator":"range"`) ||
			!strings.Contains(string(reqs[0].Body), all.Items[244].Time.Format("2006-01-02T15:04:05.000Z")) {
			t.Fatalf("requests %d, body %s", len(reqs), reqs[0].Body)
		}
	})
	t.Run("changed on one object", func(t *testing.T) {
		get := cat.MustOp("ghl.contacts.get")
		p := map[string]any{"contactId": e.ids[0]}
		a, err := triggers.Poll(ctx, e.caller, "c", get, p, triggers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := triggers.Poll(ctx, e.caller, "c", get, p, triggers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.srv.UpdateContact(e.loc, e.ids[0], map[string]any{"firstName": "Changed"})
		c, err := triggers.Poll(ctx, e.caller, "c", get, p, triggers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Items) != 1 || a.Items[0].Key != b.Items[0].Key || a.Items[0].Key == c.Items[0].Key || a.Pages != 1 {
			t.Fatalf("keys %v %v %v", keys(a.Items), keys(b.Items), keys(c.Items))
		}
	})
}

// TestPollOffsetFixtures walks an offset-paged list with a has-more flag
// served from testdata.
func TestPollOffsetFixtures(t *testing.T) {
	var offsets []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off := r.URL.Query().Get("offset")
		offsets = append(offsets, off+"/"+r.URL.Query().Get("limit"))
		w.Write(fixture(t, "offset_page"+off+".json"))
	}))
	defer ts.Close()
	op := &catalog.Operation{ID: "test.notes", Kind: catalog.KindTrigger, Method: "GET", Path: "/notes",
		Inputs: []catalog.Input{{Name: "limit", Type: "number", In: "query"}, {Name: "offset", Type: "number", In: "query"}},
		Items:  "notes", ItemID: "id", ItemCreated: "createdAt", Dedup: "id",
		Paging: &catalog.Paging{Style: "offset", Limit: "limit", Offset: "offset", HasMore: "hasMore", MaxLimit: 2}}
	c := &httpCaller{app: &catalog.App{ID: "test"}, base: ts.URL}
	res, err := triggers.Poll(context.Background(), c, "c", op, nil, triggers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys(res.Items), ","); got != "n1,n2,n3,n4,n5" || !res.End || res.Pages != 3 {
		t.Fatalf("items %s end %v pages %d", got, res.End, res.Pages)
	}
	if got := strings.Join(offsets, " "); got != "0/2 2/2 4/2" {
		t.Fatalf("requests %s", got)
	}
	// Capped after one page, the walk says where to go on; a walk from
	// there reads the rest.
	offsets = nil
	first, err := triggers.Poll(context.Background(), c, "c", op, nil, triggers.Options{MaxPages: 1})
	if err != nil {
		t.Fatal(err)
	}
	if first.End || fmt.Sprint(first.Next) != "map[offset:2]" {
		t.Fatalf("capped: end %v next %v", first.End, first.Next)
	}
	rest, err := triggers.Poll(context.Background(), c, "c", op, nil, triggers.Options{Start: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	// The fixture lists newest first: page one held n5 and n4.
	if got := strings.Join(keys(rest.Items), ","); got != "n1,n2,n3" || strings.Join(offsets, " ") != "0/2 2/2 4/2" {
		t.Fatalf("resumed: items %s requests %v", got, offsets)
	}
}

// TestPollDateSince: Referral Rock filters members by a dateFrom date; the
// cursor strategy sends the day before the watermark's day, a coarse
// filter whose repeats dedup drops.
func TestPollDateSince(t *testing.T) {
	cat := defaultCatalog(t)
	var tick atomic.Int64
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	srv := sim.New(cat, sim.Config{Burst: -1, Daily: -1, RateLimits: map[string]catalog.RateLimit{"referralrock": {Burst: -1}},
		Now: func() time.Time { return start.Add(time.Duration(tick.Add(1)) * 3 * time.Hour) }})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	loc := "locREFERRAL000000000"
	srv.AddLocation(loc)
	srv.Seed(2)
	c := &httpCaller{cat: cat, base: ts.URL, auth: srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: loc}).Authorization()}
	ctx := context.Background()
	body, err := c.Call(ctx, "rr", cat.MustOp("referralrock.programs.list"), nil)
	if err != nil {
		t.Fatal(err)
	}
	program := gjson.GetBytes(body, "programs.0.id").String()
	if program == "" {
		t.Fatalf("no program: %s", body)
	}
	newOp := cat.MustOp("referralrock.members.new")
	before, err := triggers.Poll(ctx, c, "rr", newOp, nil, triggers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		_, err := c.Call(ctx, "rr", cat.MustOp("referralrock.members.create"),
			map[string]any{"programId": program, "firstName": fmt.Sprint("M", i), "email": fmt.Sprintf("m%d@example.com", i)})
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := triggers.Poll(ctx, c, "rr", newOp, nil, triggers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != len(before.Items)+40 {
		t.Fatalf("%d members, had %d", len(all.Items), len(before.Items))
	}
	// Members are 3 h apart: since the 30th, the filter asks from the day
	// before its day, i.e. fewer than all but every member after it.
	since := all.Items[len(all.Items)-11].Time
	res, err := triggers.Poll(ctx, c, "rr", newOp, nil, triggers.Options{Dedup: "cursor", Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) >= len(all.Items) || len(res.Items) < 11 {
		t.Fatalf("since %s: %d of %d members", since, len(res.Items), len(all.Items))
	}
	t.Logf("dateFrom %s: %d of %d members read", since.AddDate(0, 0, -1).Format("2006-01-02"), len(res.Items), len(all.Items))
}
