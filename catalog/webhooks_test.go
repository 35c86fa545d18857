package catalog_test

import (
	"slices"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
)

// TestWebhookEvents checks the triggers that declare webhook events: the
// events that carry their items and where the item is in the payload.
func TestWebhookEvents(t *testing.T) {
	c := mustCatalog(t)
	for _, tc := range []struct {
		op     string
		events []string
		item   string
		id     string
	}{
		{"ghl.contacts.search", []string{"ContactCreate", "ContactUpdate", "ContactTagUpdate"}, "", "id"},
		{"ghl.contacts.notes.list", []string{"NoteCreate"}, "", "id"},
		{"ghl.contacts.tasks.list", []string{"TaskCreate"}, "", "id"},
		{"ghl.opportunities.search", []string{"OpportunityCreate", "OpportunityStatusUpdate"}, "", "id"},
		{"ghl.appointments.events.list", []string{"AppointmentCreate"}, "appointment", "id"},
	} {
		op := c.MustOp(tc.op)
		if !op.Instant() {
			t.Errorf("%s declares no webhook events", tc.op)
			continue
		}
		for _, e := range tc.events {
			if !op.ListensTo(e) {
				t.Errorf("%s does not listen to %s (it lists %v)", tc.op, e, op.Webhooks.Events)
			}
		}
		if op.ListensTo("ContactDelete") {
			t.Errorf("%s listens to ContactDelete: a deleted object is no new item", tc.op)
		}
		if op.Webhooks.Item != tc.item || op.WebhookItemID() != tc.id {
			t.Errorf("%s: item %q id %q, want %q %q", tc.op, op.Webhooks.Item, op.WebhookItemID(), tc.item, tc.id)
		}
	}
	if c.MustOp("ghl.calendars.list").Instant() {
		t.Error("ghl.calendars.list has no webhook events in the docs")
	}
	if all := c.WebhookEvents(); !slices.Contains(all, "ContactCreate") || !slices.Contains(all, "INSTALL") || slices.Contains(all, "ContactCreat") {
		t.Errorf("WebhookEvents() = %v", all)
	}
}

// TestInstantRecipe loads a recipe that opts in to webhook events.
func TestInstantRecipe(t *testing.T) {
	c := mustCatalog(t)
	l := &catalog.RecipeLoader{Catalog: c}
	for _, tc := range []struct {
		yaml    string
		instant bool
	}{
		{"name: a\ntrigger: {op: ghl.contacts.search, connection: acme, every: 15m, instant: true}\n" +
			"steps: [{op: ghl.contacts.tags.add, input: {contactId: \"{{ .trigger.id }}\", tags: [x]}}]\n", true},
		{"name: b\ntrigger: {op: ghl.contacts.search, connection: acme, every: 15m}\n" +
			"steps: [{op: ghl.contacts.tags.add, input: {contactId: \"{{ .trigger.id }}\", tags: [x]}}]\n", false},
	} {
		r, err := l.Parse("r.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if r.Trigger.Instant != tc.instant {
			t.Errorf("%s: instant %v, want %v", r.Name, r.Trigger.Instant, tc.instant)
		}
	}
}
