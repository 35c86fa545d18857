package actions_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
)

// httpCaller makes real HTTP requests to one server with one token.
type httpCaller struct {
	cat  *catalog.Catalog
	base string
	auth string
}

func (c *httpCaller) Call(ctx context.Context, _ string, op *catalog.Operation, input map[string]any) ([]byte, error) {
	if op.Input("locationId") != nil && input["locationId"] == nil {
		input["locationId"] = loc // as the transport does from the connection
	}
	req, err := catalog.NewRequest(ctx, c.cat.App(op.App), op, c.base, input)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", c.auth)
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

const loc = "locACTIONSTEST000000"

func recipe(t testing.TB, cat *catalog.Catalog, text string) *catalog.Recipe {
	t.Helper()
	l := &catalog.RecipeLoader{Catalog: cat}
	r, err := l.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const twoSteps = `name: two-steps
trigger:
  op: ghl.contacts.search
  connection: acme
  every: 1m
filter: '{{ ne (default "" .trigger.email) "" }}'
steps:
  - op: ghl.contacts.upsert
    input:
      email: "{{ .trigger.email }}"
      firstName: "{{ upper .trigger.firstName }}"
      tags: [referral]
  - op: ghl.contacts.notes.create
    input:
      contactId: "{{ .steps.0.id }}"
      body: "From {{ .recipe }}: {{ .trigger.firstName }}"
`

func TestRunStepsAgainstSimulator(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{Burst: -1, Daily: -1})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	srv.AddLocation(loc)
	c := &httpCaller{cat: cat, base: ts.URL, auth: srv.IssueToken(sim.TokenSpec{LocationID: loc, Private: true}).Authorization()}
	rn := &actions.Runner{Catalog: cat, Caller: c}
	r := recipe(t, cat, twoSteps)
	item := map[string]any{"email": "ann@example.com", "firstName": "Ann", "locationId": loc}

	ok, err := actions.Filter(r, item)
	if err != nil || !ok {
		t.Fatalf("filter = %v, %v; want true", ok, err)
	}
	if ok, _ := actions.Filter(r, map[string]any{"firstName": "NoMail"}); ok {
		t.Fatal("filter passed an item without email")
	}
	var outs []any
	for i := range r.Steps {
		out, err := rn.RunStep(context.Background(), r, i, item, outs)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	contact, _ := outs[0].(map[string]any)
	if contact["id"] == nil || contact["firstName"] != "ANN" {
		t.Fatalf("step 0 output = %v", outs[0])
	}
	notes := srv.Writes("ghl.contacts.notes.create")
	if len(notes) != 1 {
		t.Fatalf("notes written = %d, want 1", len(notes))
	}
	if !strings.Contains(notes[0].Path, fmt.Sprint(contact["id"])) || !strings.Contains(string(notes[0].Body), "From two-steps: Ann") {
		t.Fatalf("note write = %s %s", notes[0].Path, notes[0].Body)
	}
}

func TestStepErrorNamesStep(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{Burst: -1, Daily: -1})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	srv.AddLocation(loc)
	c := &httpCaller{cat: cat, base: ts.URL, auth: srv.IssueToken(sim.TokenSpec{LocationID: loc, Private: true}).Authorization()}
	rn := &actions.Runner{Catalog: cat, Caller: c}
	r := recipe(t, cat, twoSteps)
	// step 1 with a contact that does not exist
	_, err = rn.RunStep(context.Background(), r, 1, map[string]any{"firstName": "X"}, []any{map[string]any{"id": "nope"}})
	if err == nil || !strings.Contains(err.Error(), "step 1 (ghl.contacts.notes.create)") {
		t.Fatalf("err = %v", err)
	}
}

func TestCoerce(t *testing.T) {
	tests := []struct {
		typ  string
		in   any
		want string
		err  bool
	}{
		{"number", "1.5", "1.5", false},
		{"number", "x", "", true},
		{"integer", "42", "42", false},
		{"integer", "4.5", "", true},
		{"boolean", "true", "true", false},
		{"boolean", "yes", "", true},
		{"array", `["a","b"]`, "[a b]", false},
		{"array", `{"a":1}`, "", true},
		{"object", `{"a":1}`, "map[a:1]", false},
		{"datetime", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z", false},
		{"string", "17", "17", false},
		{"number", 3, "3", false},
	}
	for _, tt := range tests {
		got, err := actions.Coerce(&catalog.Input{Name: "x", Type: tt.typ}, tt.in)
		if (err != nil) != tt.err || (err != nil && !strings.HasPrefix(err.Error(), "input x: ")) {
			t.Errorf("%s %v: err = %v", tt.typ, tt.in, err)
			continue
		}
		if !tt.err && fmt.Sprint(got) != tt.want {
			t.Errorf("%s %v = %v, want %s", tt.typ, tt.in, got, tt.want)
		}
	}
}

const fiveSteps = `name: five-steps
trigger:
  op: ghl.contacts.search
  connection: acme
  every: 1m
steps:
  - op: ghl.contacts.upsert
    input: {email: "{{ .trigger.email }}", firstName: "{{ .trigger.firstName | default \"x\" }}", tags: [a, b]}
  - op: ghl.contacts.notes.create
    input: {contactId: "{{ .steps.0.id }}", body: "{{ .trigger.firstName }} {{ .trigger.lastName }}"}
  - op: ghl.contacts.tasks.create
    input: {contactId: "{{ .steps.0.id }}", title: "Call {{ upper .trigger.firstName }}", dueDate: '{{ now | addDays 1 | formatTime "rfc3339" }}', completed: false}
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .steps.0.id }}", tags: [new-lead]}
  - op: ghl.contacts.notes.create
    input: {contactId: "{{ .steps.0.id }}", body: "task {{ .steps.2.id }} note {{ .steps.1.id }}"}
`

// BenchmarkRenderFiveSteps renders every input of a 5-step chain.
func BenchmarkRenderFiveSteps(b *testing.B) {
	cat, err := catalog.Default()
	if err != nil {
		b.Fatal(err)
	}
	r := recipe(b, cat, fiveSteps)
	item := map[string]any{"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"}
	outs := []any{map[string]any{"id": "c1"}, map[string]any{"id": "n1"}, map[string]any{"id": "t1"}, map[string]any{}}
	ops := make([]*catalog.Operation, len(r.Steps))
	for i := range r.Steps {
		ops[i] = cat.Op(r.Steps[i].Op)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range r.Steps {
			if _, err := actions.Render(ops[i], &r.Steps[i], actions.Data(r.Name, item, outs[:min(i, len(outs))])); err != nil {
				b.Fatal(err)
			}
		}
	}
}
