package sim_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

// TestAdminIndexAndLogs: GET /_sim/ lists the simulator's endpoints; the
// request log keeps query strings; the write log holds writes only (a
// search sent as a POST is a read).
func TestAdminIndexAndLogs(t *testing.T) {
	e := newEnv(t, sim.Config{})
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		st, b := e.send(req)
		if st != 200 {
			t.Fatalf("GET %s: %d %s", path, st, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	var index []sim.AdminEndpoint
	get("/_sim/", &index)
	if len(index) != len(sim.AdminEndpoints) {
		t.Fatalf("index lists %d endpoints, want %d", len(index), len(sim.AdminEndpoints))
	}
	for _, ep := range sim.AdminEndpoints {
		if ep.Path == "/_sim/" || ep.Method != http.MethodGet {
			continue
		}
		req, _ := http.NewRequest(ep.Method, e.ts.URL+ep.Path, nil)
		if st, b := e.send(req); st != 200 {
			t.Errorf("%s %s (listed): %d %s", ep.Method, ep.Path, st, b)
		}
	}

	e.call("ghl.contacts.search", map[string]any{"locationId": e.loc, "pageLimit": 10})
	e.call("ghl.contacts.list", map[string]any{"locationId": e.loc, "limit": 5, "query": "ann"})
	e.call("ghl.contacts.create", map[string]any{"locationId": e.loc, "firstName": "Ann", "email": "ann@example.com"})

	var requests []map[string]any
	get("/_sim/requests?op=ghl.contacts.list", &requests)
	if len(requests) != 1 || !strings.Contains(requests[0]["query"].(string), "query=ann") {
		t.Fatalf("request log of the list: %v", requests)
	}
	var writes []map[string]any
	get("/_sim/writes", &writes)
	if len(writes) != 1 || writes[0]["op"] != "ghl.contacts.create" {
		t.Fatalf("write log: %v (want only the create)", writes)
	}
}
