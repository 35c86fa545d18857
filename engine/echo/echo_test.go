package echo_test

import (
	"context"
	"testing"

	"github.com/ghlflow/ghlflow/engine/echo"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// TestMatch: an item is the echo of a write when it still holds the written
// values, once per subscription; an update's echo reaches only triggers of
// changes; a field someone else changed makes it a real change.
func TestMatch(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	st := &echo.Store{Redis: rdb, Prefix: prefix}
	written := map[string]any{"title": "Call", "dueDate": "2030-01-02T10:00:00Z", "completed": true, "tags": []any{"x"}}
	if err := st.Record(ctx, "rz", "created-1", "", true, written); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, "rz", "updated-1", "", false, written); err != nil {
		t.Fatal(err)
	}
	same := map[string]any{"id": "x", "title": "call", "dueDate": "2030-01-02T10:00:00.000Z", "completed": true, "other": 1}
	changed := map[string]any{"title": "Call", "dueDate": "2030-01-02T10:00:00Z", "completed": false}
	cases := []struct {
		name, conn, id, sub string
		changes             bool
		item                map[string]any
		want                bool
	}{
		{"another connection", "ghl", "created-1", "s1", true, same, false},
		{"no write", "rz", "nothing", "s1", true, same, false},
		{"a field changed since", "rz", "created-1", "s1", true, changed, false},
		{"created, trigger of changes", "rz", "created-1", "s1", true, same, true},
		{"seen once per subscription", "rz", "created-1", "s1", true, same, false},
		{"created, trigger of new items", "rz", "created-1", "s2", false, same, true},
		{"updated, trigger of new items", "rz", "updated-1", "s3", false, same, false},
		{"updated, trigger of changes", "rz", "updated-1", "s4", true, same, true},
	}
	for _, c := range cases {
		got, err := st.Match(ctx, c.conn, c.id, c.sub, c.changes, nil, c.item)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: echo %v, want %v", c.name, got, c.want)
		}
	}
	if err := echo.Forget(ctx, rdb, prefix, "rz"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Match(ctx, "rz", "updated-1", "s9", true, nil, same); got {
		t.Error("a forgotten fingerprint still matches")
	}
}

// TestMatchOnlyWritingBack: a created object's echo stops only a recipe that
// would send the change back to its source; a recipe that writes elsewhere
// (a welcome task in GHL for a contact a referral recipe created) runs.
func TestMatchOnlyWritingBack(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	st := &echo.Store{Redis: rdb, Prefix: prefix}
	written := map[string]any{"email": "a@example.com"}
	if err := st.Record(ctx, "ghl", "contact-1", "rr", true, written); err != nil {
		t.Fatal(err)
	}
	item := map[string]any{"id": "contact-1", "email": "a@example.com"}
	toGHL := func(conn string) bool { return conn == "ghl" }
	toRR := func(conn string) bool { return conn == "rr" }
	if got, err := st.Match(ctx, "ghl", "contact-1", "welcome", false, toGHL, item); err != nil || got {
		t.Errorf("a recipe writing to ghl only: echo %v %v, want false", got, err)
	}
	if got, err := st.Match(ctx, "ghl", "contact-1", "back-to-rr", false, toRR, item); err != nil || !got {
		t.Errorf("a recipe writing back to rr: echo %v %v, want true", got, err)
	}
}
