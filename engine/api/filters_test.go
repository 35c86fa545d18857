package api_test

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/api"
)

// TestListFiltersRefuseUnknownValues: every list filter the OpenAPI
// document gives an enum (the status of tenants, subscriptions and runs)
// takes each of its values and answers any other with 422 naming the
// filter and its values; a valid one filters.
func TestListFiltersRefuseUnknownValues(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				In     string `json:"in"`
				Schema struct {
					Enum []string `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	f.must(f.admin, "GET", "/api/v1/openapi.json", nil, 200, &doc)
	var checked []string
	for path, ops := range doc.Paths {
		for _, p := range ops["get"].Parameters {
			if p.In != "query" || len(p.Schema.Enum) == 0 {
				continue
			}
			checked = append(checked, path+"?"+p.Name)
			for _, v := range p.Schema.Enum {
				f.must(f.admin, "GET", path+"?"+p.Name+"="+url.QueryEscape(v), nil, 200, nil)
			}
			var eb api.ErrorBody
			f.must(f.admin, "GET", path+"?"+p.Name+"=bogus", nil, 422, &eb)
			if eb.Error.Code != "invalid_filter" || eb.Error.Field != p.Name ||
				!strings.Contains(eb.Error.Message, fmt.Sprintf("%s %q is not one of %s", p.Name, "bogus", strings.Join(p.Schema.Enum, ", "))) {
				t.Errorf("%s?%s=bogus: %+v", path, p.Name, eb.Error)
			}
		}
	}
	sort.Strings(checked)
	if want := "/api/v1/runs?status /api/v1/subscriptions?status /api/v1/tenants?status"; strings.Join(checked, " ") != want {
		t.Fatalf("filters with values %v, want %s", checked, want)
	}
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "on"}, 201, nil)
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "off", "status": "paused"}, 201, nil)
	var l listOf[api.TenantView]
	f.must(f.admin, "GET", "/api/v1/tenants?status=paused", nil, 200, &l)
	if len(l.Items) != 1 || l.Items[0].ID != "off" {
		t.Fatalf("paused tenants: %+v", l.Items)
	}
}
