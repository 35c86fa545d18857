package catalog_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
)

func TestValueRender(t *testing.T) {
	data := map[string]any{
		"trigger": map[string]any{"id": "c1", "email": "Ann@Example.com", "tags": []any{"a", "b"}, "dateAdded": "2024-06-06T18:54:57.221Z"},
		"steps":   []any{map[string]any{"contact": map[string]any{"id": "k9"}}},
	}
	tests := []struct {
		in   any
		want any
	}{
		{"plain", "plain"},
		{"{{ .trigger.id }}", "c1"},
		{"{{ .steps.0.contact.id }}", "k9"},
		{"{{ lower .trigger.email }}", "ann@example.com"},
		{"{{ upper .trigger.id }}", "C1"},
		{"{{ join \",\" .trigger.tags }}", "a,b"},
		{"{{ json .trigger.tags }}", `["a","b"]`},
		{"{{ .trigger.missing | default \"none\" }}", "none"},
		{"[{{ .trigger.missing }}]", "[]"},
		{"{{ .trigger.dateAdded | addDays 1 | formatTime \"date\" }}", "2024-06-07"},
		{"{{ .trigger.dateAdded | epochMs }}", "1717700097221"},
		{"{{ contains \"b\" .trigger.tags }}", "true"},
		{42, 42},
		{map[string]any{"a": "{{ .trigger.id }}", "b": []any{"x", "{{ .steps.0.contact.id }}"}}, map[string]any{"a": "c1", "b": []any{"x", "k9"}}},
	}
	for _, tt := range tests {
		v, err := catalog.CompileValue("t", tt.in)
		if err != nil {
			t.Fatalf("%v: %v", tt.in, err)
		}
		got, err := v.Render(data)
		if err != nil {
			t.Fatalf("%v: %v", tt.in, err)
		}
		if !equalAny(got, tt.want) {
			t.Errorf("%v rendered %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestValueNow(t *testing.T) {
	v, err := catalog.CompileValue("t", `{{ now | addHours 2 | formatTime "rfc3339" }}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := time.Parse(time.RFC3339, got.(string))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tm); d < time.Hour || d > 3*time.Hour {
		t.Errorf("now+2h rendered %s", got)
	}
}

func TestValueErrors(t *testing.T) {
	if _, err := catalog.CompileValue("t", "{{ .trigger.id "); err == nil {
		t.Error("unclosed action compiled")
	}
	if _, err := catalog.CompileValue("t", "{{ nosuchfunc .x }}"); err == nil || !strings.Contains(err.Error(), "nosuchfunc") {
		t.Errorf("unknown function: %v", err)
	}
	v, _ := catalog.CompileValue("t", "{{ index .steps 3 }}")
	if _, err := v.Render(map[string]any{"steps": []any{}}); err == nil {
		t.Error("out-of-range step rendered")
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalAny(x[k], y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalAny(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestValueKey: values written alike share a key; a change of literal,
// template text, type or shape gives another.
func TestValueKey(t *testing.T) {
	key := func(v any) string {
		t.Helper()
		c, err := catalog.CompileValue("p", v)
		if err != nil {
			t.Fatal(err)
		}
		return c.Key()
	}
	base := map[string]any{"sort": []any{map[string]any{"field": "dateAdded", "direction": "desc"}}, "q": "{{ .connection.location_id }}"}
	if key(base) != key(map[string]any{"q": "{{.connection.location_id}}", "sort": []any{map[string]any{"direction": "desc", "field": "dateAdded"}}}) {
		t.Error("the same value written in another order has another key")
	}
	for _, other := range []any{
		map[string]any{"sort": []any{map[string]any{"field": "dateAdded", "direction": "asc"}}, "q": "{{ .connection.location_id }}"},
		map[string]any{"sort": []any{map[string]any{"field": "dateAdded", "direction": "desc"}}, "q": "{{ .tenant.id }}"},
		map[string]any{"sort": map[string]any{"field": "dateAdded", "direction": "desc"}, "q": "{{ .connection.location_id }}"},
		"10", 10,
	} {
		if key(other) == key(base) {
			t.Errorf("%v has the key of %v", other, base)
		}
	}
	if key("10") == key(10) {
		t.Error("a text and a number share a key")
	}
}

// TestFindBy: findBy returns the first object whose field (a dotted path)
// reads as the value, and nothing in a list without one, in what is not a
// list, or past a field that is not an object.
func TestFindBy(t *testing.T) {
	tasks := []any{
		map[string]any{"id": "t1", "body": "other", "meta": map[string]any{"n": 1}},
		map[string]any{"id": "t2", "body": "Referral Rock referral r-9", "meta": map[string]any{"n": 2}},
		map[string]any{"id": "t3", "body": "Referral Rock referral r-9"},
	}
	for _, tc := range []struct {
		tmpl string
		data any
		want string
	}{
		{`{{ (findBy "body" "Referral Rock referral r-9" .list).id }}`, tasks, "t2"},
		{`{{ (findBy "meta.n" 2 .list).id }}`, tasks, "t2"},
		{`{{ (findBy "meta.n" "1" .list).id }}`, tasks, "t1"},
		{`{{ if findBy "body" "nope" .list }}found{{ else }}none{{ end }}`, tasks, "none"},
		{`{{ if findBy "body.deeper" "x" .list }}found{{ else }}none{{ end }}`, tasks, "none"},
		{`{{ if findBy "body" "x" .list }}found{{ else }}none{{ end }}`, "not a list", "none"},
		{`{{ if .list | findBy "id" "t3" }}found{{ end }}`, tasks, "found"},
	} {
		v, err := catalog.CompileValue("t", tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Render(map[string]any{"list": tc.data})
		if err != nil || got != tc.want {
			t.Errorf("%s: %v %v, want %q", tc.tmpl, got, err, tc.want)
		}
	}
}
