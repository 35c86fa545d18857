package sim_test

import (
	"fmt"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/tidwall/gjson"
)

// walkCheck asserts a walk saw every id present at its start exactly once.
func walkCheck(t *testing.T, seen []string, before map[string]bool) {
	t.Helper()
	count := map[string]int{}
	for _, id := range seen {
		count[id]++
		if count[id] > 1 {
			t.Fatalf("duplicate %s", id)
		}
	}
	for id := range before {
		if count[id] == 0 {
			t.Fatalf("gap: %s never returned", id)
		}
	}
}

func seedContacts(e *env, n int) map[string]bool {
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		ids[e.srv.CreateContact(e.loc, map[string]any{"email": fmt.Sprintf("p%d@example.com", i)})["id"].(string)] = true
	}
	return ids
}

func TestPagingWhileAdding(t *testing.T) {
	unlimited := sim.Config{Burst: -1, Daily: -1}
	t.Run("search page", func(t *testing.T) {
		e := newEnv(t, unlimited)
		before := seedContacts(e, 95)
		var seen []string
		for page := 1; ; page++ {
			b := e.call("ghl.contacts.search", map[string]any{"locationId": e.loc, "pageLimit": 10, "page": page})
			items := b["contacts"].([]any)
			for _, it := range items {
				seen = append(seen, it.(map[string]any)["id"].(string))
			}
			e.srv.CreateContact(e.loc, map[string]any{"email": fmt.Sprintf("late%d@example.com", page)})
			if len(items) < 10 {
				break
			}
		}
		walkCheck(t, seen, before)
	})
	t.Run("search searchAfter", func(t *testing.T) {
		e := newEnv(t, unlimited)
		before := seedContacts(e, 57)
		var seen []string
		var after any
		for i := 0; i < 100; i++ {
			in := map[string]any{"locationId": e.loc, "pageLimit": 7}
			if after != nil {
				in["searchAfter"] = after
			}
			st, b := e.do(e.tok, "ghl.contacts.search", in)
			if st != 200 {
				t.Fatalf("%d %s", st, b)
			}
			items := gjson.GetBytes(b, "contacts").Array()
			for _, it := range items {
				seen = append(seen, it.Get("id").String())
			}
			e.srv.CreateContact(e.loc, map[string]any{"email": fmt.Sprintf("late%d@example.com", i)})
			if len(items) < 7 {
				break
			}
			after = items[len(items)-1].Get("searchAfter").Value()
		}
		walkCheck(t, seen, before)
	})
	t.Run("deprecated list cursor", func(t *testing.T) {
		e := newEnv(t, unlimited)
		before := seedContacts(e, 64)
		op := e.cat.MustOp("ghl.contacts.list")
		seen := cursorWalk(t, e, op, map[string]any{"locationId": e.loc, "limit": 9}, func(i int) {
			e.srv.CreateContact(e.loc, map[string]any{"email": fmt.Sprintf("late%d@example.com", i)})
		})
		walkCheck(t, seen, before)
	})
	t.Run("opportunities cursor", func(t *testing.T) {
		e := newEnv(t, unlimited)
		e.srv.Seed(1)
		cid := e.srv.CreateContact(e.loc, nil)["id"].(string)
		pipe := gjson.Get(mustJSON(e.call("ghl.opportunities.pipelines.list", map[string]any{"locationId": e.loc})), "pipelines.0.id").String()
		before := map[string]bool{}
		mk := func(name string) string {
			b := e.call("ghl.opportunities.create", map[string]any{"locationId": e.loc, "pipelineId": pipe, "name": name, "status": "open", "contactId": cid})
			return b["opportunity"].(map[string]any)["id"].(string)
		}
		for i := 0; i < 33; i++ {
			before[mk(fmt.Sprint("d", i))] = true
		}
		op := e.cat.MustOp("ghl.opportunities.search")
		seen := cursorWalk(t, e, op, map[string]any{"location_id": e.loc, "limit": 5}, func(i int) { mk(fmt.Sprint("late", i)) })
		walkCheck(t, seen, before)
	})
}

// cursorWalk follows an operation's paging.next cursor to the end (a short
// page), calling between after each page.
func cursorWalk(t *testing.T, e *env, op *catalog.Operation, in map[string]any, between func(int)) []string {
	t.Helper()
	var seen []string
	limit := in[op.Paging.Limit].(int)
	for i := 0; i < 1000; i++ {
		st, b := e.do(e.tok, op.ID, in)
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		items := gjson.GetBytes(b, op.Items).Array()
		for _, it := range items {
			seen = append(seen, it.Get(op.ItemID).String())
		}
		between(i)
		if len(items) < limit {
			return seen
		}
		for param, path := range op.Paging.Next {
			in[param] = gjson.GetBytes(b, path).Value()
		}
	}
	t.Fatal("walk did not end")
	return nil
}
