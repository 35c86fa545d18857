package triggers_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/triggers"
)

func defaultCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExtract(t *testing.T) {
	cat := defaultCatalog(t)
	search := cat.MustOp("ghl.contacts.search")
	get := cat.MustOp("ghl.contacts.get")
	notes := &catalog.Operation{ID: "test.notes", Kind: catalog.KindTrigger, Items: "notes", ItemID: "id", ItemCreated: "createdAt"}
	cases := []struct {
		name     string
		op       *catalog.Operation
		strategy string
		file     string
		keys     []string
		times    []string
	}{
		{"id", search, "id", "contacts_page.json", []string{"c3", "c2", "c1"},
			[]string{"2026-11-01T10:00:03Z", "2026-11-01T10:00:02Z", "2026-11-01T10:00:01Z"}},
		{"updated", search, "updated", "contacts_page.json",
			[]string{"c3@2026-11-02T09:00:00.000Z", "c2@2026-11-01T10:00:02.000Z", "c1@2026-11-01T10:00:01.000Z"},
			[]string{"2026-11-02T09:00:00Z", "2026-11-01T10:00:02Z", "2026-11-01T10:00:01Z"}},
		{"cursor", search, "cursor", "contacts_page.json",
			[]string{"1793527203000:c3", "1793527202000:c2", "1793527201000:c1"},
			[]string{"2026-11-01T10:00:03Z", "2026-11-01T10:00:02Z", "2026-11-01T10:00:01Z"}},
		{"changed by update time", get, "changed", "contact_one.json", []string{"c9@2026-11-03T08:30:00.000Z"},
			[]string{"2026-11-03T08:30:00Z"}},
		{"changed null object", get, "changed", "contact_null.json", nil, nil},
		{"epoch ms times", notes, "id", "notes_noupdated.json", []string{"n1", "n2"},
			[]string{"2025-11-01T12:26:40Z", "2025-11-01T12:26:41Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			items, err := triggers.Extract(c.op, c.strategy, fixture(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(c.keys) {
				t.Fatalf("got %d items, want %d", len(items), len(c.keys))
			}
			for i, it := range items {
				if it.Key != c.keys[i] {
					t.Errorf("item %d key %q, want %q", i, it.Key, c.keys[i])
				}
				if got := it.Time.Format(time.RFC3339); got != c.times[i] {
					t.Errorf("item %d time %s, want %s", i, got, c.times[i])
				}
				if !gjson.ValidBytes(it.Raw) {
					t.Errorf("item %d raw is not JSON: %s", i, it.Raw)
				}
			}
		})
	}
}

func TestChangedContentHash(t *testing.T) {
	op := &catalog.Operation{ID: "test.obj", Kind: catalog.KindTrigger, Object: "o", ItemID: "id"}
	key := func(body string) string {
		items, err := triggers.Extract(op, "changed", []byte(body))
		if err != nil || len(items) != 1 {
			t.Fatalf("%s: %v %v", body, items, err)
		}
		return items[0].Key
	}
	a := key(`{"o":{"id":"x","a":1,"b":2}}`)
	if b := key(`{"o":{"b":2,"id":"x","a":1}}`); a != b {
		t.Errorf("field order changed the key: %s vs %s", a, b)
	}
	if c := key(`{"o":{"id":"x","a":1,"b":3}}`); a == c {
		t.Errorf("a content change kept the key %s", a)
	}
}

func TestExtractErrors(t *testing.T) {
	cat := defaultCatalog(t)
	search := cat.MustOp("ghl.contacts.search")
	for _, body := range []string{`not json`, `{"contacts":{"id":"x"}}`, `{"contacts":[{"email":"no id"}]}`} {
		if _, err := triggers.Extract(search, "id", []byte(body)); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

func TestSinceValue(t *testing.T) {
	at := time.Date(2026, 11, 1, 10, 0, 3, 250e6, time.FixedZone("x", 3600))
	cases := []struct {
		since catalog.Since
		prev  any
		want  string
	}{
		{catalog.Since{Input: "startAfter", Format: "epoch_ms"}, nil, "1793523603250"},
		{catalog.Since{Input: "from", Format: "rfc3339"}, nil, "2026-11-01T09:00:03.250Z"},
		{catalog.Since{Input: "dateFrom", Format: "date"}, nil, "2026-10-31"},
		{catalog.Since{Input: "filters", Format: "search_filter", Field: "dateAdded"}, nil,
			"[map[field:dateAdded operator:range value:map[gt:2026-11-01T09:00:03.250Z]]]"},
		{catalog.Since{Input: "filters", Format: "search_filter", Field: "dateAdded"},
			[]any{map[string]any{"field": "tags", "operator": "contains", "value": "vip"}},
			"[map[field:tags operator:contains value:vip] map[field:dateAdded operator:range value:map[gt:2026-11-01T09:00:03.250Z]]]"},
	}
	for _, c := range cases {
		v, err := triggers.SinceValue(&c.since, at, c.prev)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(fmtAny(v)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.since.Format, got, c.want)
		}
	}
	if _, err := triggers.SinceValue(&catalog.Since{Input: "x", Format: "weekday"}, at, nil); err == nil {
		t.Error("unknown format: no error")
	}
}

// BenchmarkExtract100 keys a 100-contact page by each strategy.
func BenchmarkExtract100(b *testing.B) {
	cat := defaultCatalog(b)
	op := cat.MustOp("ghl.contacts.search")
	var sb strings.Builder
	sb.WriteString(`{"contacts":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		t := base.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000Z")
		fmt.Fprintf(&sb, `{"id":"c%06d","email":"p%d@example.com","firstName":"Ann","lastName":"Lee","tags":["a","b"],"customFields":[],"dateAdded":%q,"dateUpdated":%q}`, i, i, t, t)
	}
	sb.WriteString(`],"total":100}`)
	body := []byte(sb.String())
	for _, strategy := range []string{"id", "updated", "cursor"} {
		b.Run(strategy, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				items, err := triggers.Extract(op, strategy, body)
				if err != nil || len(items) != 100 {
					b.Fatal(err)
				}
			}
		})
	}
}

var base = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
