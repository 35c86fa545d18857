package api_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/api"
)

// TestRecipes: a bad recipe answers 422 with every problem at its
// line:col and is not stored; a good one is stored, listed, read and
// deleted; a file recipe cannot be replaced or deleted.
func TestRecipes(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	bad, err := os.ReadFile("testdata/bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/recipes/api-bad", "/api/v1/recipes:lint"} {
		method := map[bool]string{true: "PUT", false: "POST"}[strings.Contains(path, "api-bad")]
		var eb api.ErrorBody
		f.must(f.admin, method, path, string(bad), 422, &eb)
		if eb.Error.Code != "invalid_recipe" || len(eb.Problems) < 2 {
			t.Fatalf("%s: %+v", path, eb)
		}
		for _, p := range eb.Problems {
			if p.Line < 3 || p.Col < 1 || p.Message == "" {
				t.Fatalf("%s: problem without its place: %+v", path, p)
			}
		}
		if eb.Problems[0].Line != 3 || !strings.Contains(eb.Problems[0].Message, "nosuchop") {
			t.Fatalf("%s: first problem %+v", path, eb.Problems[0])
		}
	}
	f.must(f.admin, "GET", "/api/v1/recipes/api-bad", nil, 404, nil)

	tag, _ := os.ReadFile("testdata/tag.yaml")
	var lint api.Lint
	f.must(f.admin, "POST", "/api/v1/recipes:lint", string(tag), 200, &lint)
	if !lint.Valid || lint.Recipe.Name != "api-tag-new-contacts" {
		t.Fatalf("lint: %+v", lint)
	}
	f.must(f.admin, "GET", "/api/v1/recipes/api-tag-new-contacts", nil, 404, nil)
	var eb api.ErrorBody
	f.must(f.admin, "PUT", "/api/v1/recipes/other-name", string(tag), 422, &eb)
	if eb.Error.Field != "name" {
		t.Fatalf("name mismatch: %+v", eb)
	}
	f.must(f.admin, "PUT", "/api/v1/recipes/api-tag-new-contacts", string(tag), 200, nil)
	var rs listOf[api.RecipeView]
	f.must(f.admin, "GET", "/api/v1/recipes", nil, 200, &rs)
	if len(rs.Items) != 2 || rs.Items[0].Name != "api-new-contact-note" || rs.Items[1].Source != "stored" {
		t.Fatalf("recipes: %+v", rs)
	}
	var rv api.RecipeView
	f.must(f.admin, "GET", "/api/v1/recipes/api-tag-new-contacts", nil, 200, &rv)
	if rv.Text != string(tag) || rv.Trigger != "ghl.contacts.search" || rv.Steps[0] != "ghl.contacts.tags.add" {
		t.Fatalf("recipe: %+v", rv)
	}
	note, _ := os.ReadFile("testdata/recipes/note.yaml")
	f.must(f.admin, "PUT", "/api/v1/recipes/api-new-contact-note", string(note), 409, nil)
	f.must(f.admin, "DELETE", "/api/v1/recipes/api-new-contact-note", nil, 404, nil)
	f.must(f.admin, "DELETE", "/api/v1/recipes/api-tag-new-contacts", nil, 204, nil)
	f.must(f.admin, "GET", "/api/v1/recipes/api-tag-new-contacts", nil, 404, nil)
}

// TestRequestLimitsAndIDs: bodies over 1 MB answer 413; every response
// carries a request id, the client's when it sent a plain one; lists page
// with cursors; errors name the field at fault.
func TestRequestLimitsAndIDs(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	big := `{"id": "big", "name": "` + strings.Repeat("x", api.MaxBody) + `"}`
	var eb api.ErrorBody
	f.must(f.admin, "POST", "/api/v1/tenants", big, http.StatusRequestEntityTooLarge, &eb)
	if eb.Error.Code != "too_large" {
		t.Fatalf("%+v", eb)
	}
	f.must(f.admin, "PUT", "/api/v1/recipes/x", "name: x\n#"+strings.Repeat("x", api.MaxBody), 413, nil)
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "no spaces"}, 422, &eb)
	if eb.Error.Field != "id" || eb.Error.Message == "" {
		t.Fatalf("%+v", eb)
	}
	for i := range 5 {
		f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "t" + string(rune('a'+i)), "labels": map[string]string{"plan": "pro"}}, 201, nil)
	}
	f.must(f.admin, "POST", "/api/v1/tenants", map[string]any{"id": "ta"}, 409, nil)
	var seen []string
	cursor := ""
	for range 10 {
		var l listOf[api.TenantView]
		f.must(f.admin, "GET", "/api/v1/tenants?limit=2&cursor="+cursor, nil, 200, &l)
		for _, t := range l.Items {
			seen = append(seen, t.ID)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "ta,tb,tc,td,te" {
		t.Fatalf("paged: %v", seen)
	}
	f.must(f.admin, "GET", "/api/v1/tenants?cursor=!!", nil, 400, nil)
	var tv api.TenantView
	f.must(f.admin, "PATCH", "/api/v1/tenants/tb", map[string]any{"labels": map[string]string{"plan": "", "tier": "gold"}, "status": "paused"}, 200, &tv)
	if tv.Status != "paused" || tv.Labels["tier"] != "gold" || tv.Labels["plan"] != "" {
		t.Fatalf("patched: %+v", tv)
	}
	f.must(f.admin, "PATCH", "/api/v1/tenants/tb", map[string]any{"status": "sleeping"}, 422, nil)

	resp, _ := f.send(f.admin, "GET", "/api/v1/tenants/tb", nil)
	if len(resp.Header.Get("X-Request-Id")) != 16 {
		t.Fatalf("request id %q", resp.Header.Get("X-Request-Id"))
	}
	resp, _ = f.send("", "GET", "/api/v1/nope", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("unknown route without a key: %d", resp.StatusCode)
	}
}
