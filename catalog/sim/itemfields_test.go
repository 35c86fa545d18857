package sim_test

import (
	"slices"
	"sort"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

// TestItemFieldsMatchSimulator checks the item fields the catalog lists for
// a trigger (recipe lint warns about .trigger fields outside them) against
// the items the simulator returns: every field an item has is listed (the
// list may name more: fields the API returns only when they are set).
func TestItemFieldsMatchSimulator(t *testing.T) {
	e := newEnv(t, sim.Config{Seed: 7})
	e.srv.Seed(5)
	inputs := map[string]map[string]any{
		"ghl.contacts.search": {"locationId": e.loc, "pageLimit": 100},
	}
	checked := 0
	for _, op := range e.cat.Ops() {
		if len(op.ItemFields) == 0 {
			continue
		}
		checked++
		t.Run(op.ID, func(t *testing.T) {
			tok := e.tok
			if op.App != "ghl" {
				tok = e.srv.IssueToken(sim.TokenSpec{App: op.App, LocationID: e.loc})
			}
			st, body := e.do(tok, op.ID, inputs[op.ID])
			if st != 200 {
				t.Fatalf("status %d: %s", st, body)
			}
			seen := map[string]bool{}
			gjson.GetBytes(body, op.Items).ForEach(func(_, item gjson.Result) bool {
				item.ForEach(func(k, _ gjson.Result) bool {
					seen[k.String()] = true
					return true
				})
				return true
			})
			if len(seen) == 0 {
				t.Fatalf("no items at %q: %s", op.Items, body)
			}
			var extra []string
			for k := range seen {
				if !slices.Contains(op.ItemFields, k) {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("item_fields does not list %v, which the simulator's items have", extra)
			}
		})
	}
	if checked < 3 {
		t.Fatalf("only %d triggers list their item fields", checked)
	}
}
