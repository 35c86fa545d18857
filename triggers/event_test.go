package triggers_test

import (
	"errors"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/triggers"
)

// TestEventItem reads items from the payloads of HighLevel's event
// examples and keys them as a poll of the same operation would.
func TestEventItem(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op, strategy, payload string
		key                   string
		err                   error
	}{
		{"ghl.contacts.search", "", `{"type":"ContactCreate","locationId":"L","id":"c1","dateAdded":"2021-11-26T12:41:02.193Z"}`, "c1", nil},
		{"ghl.contacts.search", "cursor", `{"type":"ContactCreate","locationId":"L","id":"c1","dateAdded":"2021-11-26T12:41:02.193Z"}`,
			"1637930462193:c1", nil},
		{"ghl.appointments.events.list", "", `{"type":"AppointmentCreate","locationId":"L","appointment":{"id":"a1","calendarId":"cal"}}`, "a1", nil},
		{"ghl.appointments.events.list", "", `{"type":"AppointmentCreate","locationId":"L","id":"a1"}`, "", triggers.ErrNoItem},
		{"ghl.opportunities.search", "updated", `{"type":"OpportunityUpdate","locationId":"L","id":"o1","updatedAt":"2021-11-26T12:41:02.193Z"}`,
			"o1@2021-11-26T12:41:02.193Z", nil},
		// HighLevel's opportunity events carry dateAdded, not the API's
		// createdAt and updatedAt.
		{"ghl.opportunities.search", "cursor", `{"type":"OpportunityCreate","locationId":"L","id":"o1","dateAdded":"2021-11-26T12:41:02.193Z"}`,
			"", triggers.ErrNoItem},
		{"ghl.opportunities.search", "updated", `{"type":"OpportunityCreate","locationId":"L","id":"o1","dateAdded":"2021-11-26T12:41:02.193Z"}`,
			"", triggers.ErrNoItem},
	} {
		it, err := triggers.EventItem(cat.MustOp(tc.op), tc.strategy, []byte(tc.payload))
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("%s %s: err %v, want %v", tc.op, tc.payload, err, tc.err)
			continue
		}
		if it.Key != tc.key {
			t.Errorf("%s %s: key %q, want %q", tc.op, tc.payload, it.Key, tc.key)
		}
	}
	if _, err := triggers.EventItem(cat.MustOp("ghl.calendars.list"), "", []byte(`{}`)); err == nil {
		t.Error("an operation without events read an item")
	}
}

// TestEventMatches: an event's item belongs to a recipe only when it
// agrees with the inputs the operation's webhooks match.
func TestEventMatches(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	op := cat.MustOp("ghl.contacts.notes.list")
	it, err := triggers.EventItem(op, "", []byte(`{"type":"NoteCreate","locationId":"L","id":"n1","contactId":"c1"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params map[string]any
		want   bool
	}{
		{map[string]any{"contactId": "c1"}, true},
		{map[string]any{"contactId": "c2"}, false},
		{map[string]any{}, true},
	} {
		if got := triggers.EventMatches(op, tc.params, it); got != tc.want {
			t.Errorf("params %v: %v, want %v", tc.params, got, tc.want)
		}
	}
}
