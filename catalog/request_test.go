package catalog_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

func TestNewRequest(t *testing.T) {
	c := mustCatalog(t)
	ctx := context.Background()
	tests := []struct {
		op       string
		input    map[string]any
		wantURL  string
		wantBody string
	}{
		{"ghl.contacts.get", map[string]any{"contactId": "a b/c"}, "http://sim/contacts/a%20b%2Fc", ""},
		{"ghl.contacts.list", map[string]any{"locationId": "L1", "limit": 20, "startAfter": int64(1603870249758)}, "http://sim/contacts/?limit=20&locationId=L1&startAfter=1603870249758", ""},
		{"ghl.contacts.tasks.create", map[string]any{"contactId": "c1", "title": "Call", "dueDate": "2024-01-01T00:00:00Z", "completed": false},
			"http://sim/contacts/c1/tasks", `{"completed":false,"dueDate":"2024-01-01T00:00:00Z","title":"Call"}`},
		{"ghl.contacts.tags.add", map[string]any{"contactId": "c1", "tags": []any{"a", "b"}}, "http://sim/contacts/c1/tags", `{"tags":["a","b"]}`},
		{"referralrock.referrals.update_status", map[string]any{"query.primaryInfo.referralId": "r1", "referral.status": "Approved"},
			"http://sim/api/referral/update", `[{"query":{"primaryInfo":{"referralId":"r1"}},"referral":{"status":"Approved"}}]`},
	}
	for _, tt := range tests {
		op := c.MustOp(tt.op)
		req, err := catalog.NewRequest(ctx, c.App(op.App), op, "http://sim/", tt.input)
		if err != nil {
			t.Fatalf("%s: %v", tt.op, err)
		}
		if req.URL.String() != tt.wantURL || req.Method != op.Method {
			t.Errorf("%s: %s %s, want %s %s", tt.op, req.Method, req.URL, op.Method, tt.wantURL)
		}
		var body string
		if req.Body != nil {
			b, _ := io.ReadAll(req.Body)
			body = string(b)
		}
		if body != tt.wantBody {
			t.Errorf("%s: body %s, want %s", tt.op, body, tt.wantBody)
		}
		if op.App == "ghl" && req.Header.Get("Version") != op.Version {
			t.Errorf("%s: Version header %q", tt.op, req.Header.Get("Version"))
		}
	}
}

func TestNewRequestInputErrors(t *testing.T) {
	c := mustCatalog(t)
	op := c.MustOp("ghl.contacts.tasks.create")
	var ie *catalog.InputError
	_, err := catalog.NewRequest(context.Background(), c.App("ghl"), op, "http://sim", map[string]any{"contactId": "c1"})
	if !errors.As(err, &ie) || ie.Input != "title" {
		t.Errorf("missing required: %v", err)
	}
	_, err = catalog.NewRequest(context.Background(), c.App("ghl"), op, "http://sim", map[string]any{"contactId": "c1", "title": "x", "dueDate": "d", "completed": true, "nope": 1})
	if !errors.As(err, &ie) || ie.Input != "nope" {
		t.Errorf("unknown input: %v", err)
	}
}

// BenchmarkNewRequestSearch builds the request of a contacts search with a
// sort, as every poll of a "new contacts" trigger does.
func BenchmarkNewRequestSearch(b *testing.B) {
	c := mustCatalog(b)
	op := c.MustOp("ghl.contacts.search")
	app := c.App(op.App)
	in := map[string]any{"locationId": "L1", "pageLimit": 100, "page": 1,
		"sort": []any{map[string]any{"field": "dateAdded", "direction": "desc"}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := catalog.NewRequest(ctx, app, op, "http://sim", in); err != nil {
			b.Fatal(err)
		}
	}
}
