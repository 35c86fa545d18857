package sim_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/tidwall/gjson"
)

// fixture holds ids found in a seeded location, for building inputs.
type fixture struct {
	*env
	agency  sim.Token
	rr, rz  sim.Token
	ids     map[string]string
	company string
}

// first returns the id of the first item a list operation returns.
func (f *fixture) first(opID string, tok sim.Token, input map[string]any, idPath string) string {
	f.t.Helper()
	st, b := f.do(tok, opID, input)
	if st != http.StatusOK {
		f.t.Fatalf("fixture %s: %d %s", opID, st, b)
	}
	op := f.cat.MustOp(opID)
	path := op.Items + ".0." + idPath
	if op.Items == "@this" {
		path = "0." + idPath
	}
	id := gjson.GetBytes(b, path).String()
	if id == "" {
		f.t.Fatalf("fixture %s: no %s in %s", opID, path, b)
	}
	return id
}

func newFixture(t *testing.T) *fixture {
	e := newEnv(t, sim.Config{Burst: -1, Daily: -1, RateLimits: map[string]catalog.RateLimit{
		"referralrock": {Burst: -1}, "referrizer": {Burst: -1}}})
	e.srv.Seed(3)
	f := &fixture{env: e, ids: map[string]string{}, company: e.tok.CompanyID}
	f.agency = e.srv.IssueToken(sim.TokenSpec{CompanyID: e.tok.CompanyID})
	f.rr = e.srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: e.loc})
	f.rz = e.srv.IssueToken(sim.TokenSpec{App: "referrizer", LocationID: e.loc})
	loc := map[string]any{"locationId": e.loc}
	tok := e.tok
	f.ids["contact"] = f.first("ghl.contacts.list", tok, loc, "id")
	f.ids["business"] = f.first("ghl.businesses.list", tok, loc, "id")
	f.ids["calendar"] = f.first("ghl.calendars.list", tok, loc, "id")
	f.ids["group"] = f.first("ghl.calendars.groups.list", tok, loc, "id")
	win := map[string]any{"locationId": e.loc, "startTime": "0", "endTime": fmt.Sprint(time.Now().Add(30 * 24 * time.Hour).UnixMilli())}
	f.ids["event"] = f.first("ghl.appointments.events.list", tok, win, "id")
	f.ids["blocked"] = f.first("ghl.appointments.blocked_slots.list", tok, win, "id")
	f.ids["apptNote"] = f.first("ghl.appointments.notes.list", tok, map[string]any{"appointmentId": f.ids["event"], "limit": "10", "offset": "0"}, "id")
	f.ids["notification"] = f.first("ghl.calendars.notifications.list", tok, map[string]any{"calendarId": f.ids["calendar"]}, "_id")
	f.ids["resource"] = f.first("ghl.calendars.resources.list", tok, map[string]any{"resourceType": "rooms", "locationId": e.loc, "limit": "10", "skip": "0"}, "id")
	f.ids["opportunity"] = f.first("ghl.opportunities.search", tok, map[string]any{"location_id": e.loc}, "id")
	f.ids["pipeline"] = f.first("ghl.opportunities.pipelines.list", tok, loc, "id")
	f.ids["conversation"] = f.first("ghl.conversations.search", tok, loc, "id")
	f.ids["message"] = f.first("ghl.conversations.messages.list", tok, map[string]any{"conversationId": f.ids["conversation"]}, "id")
	f.ids["user"] = f.first("ghl.users.list", tok, loc, "id")
	f.ids["workflow"] = f.first("ghl.workflows.list", tok, loc, "id")
	f.ids["campaign"] = f.first("ghl.campaigns.list", tok, loc, "id")
	f.ids["blog"] = f.first("ghl.blogs.list", tok, map[string]any{"locationId": e.loc, "skip": "0", "limit": "10"}, "_id")
	f.ids["post"] = f.first("ghl.blogs.posts.list", tok, map[string]any{"locationId": e.loc, "blogId": f.ids["blog"], "limit": "10", "offset": "0"}, "_id")
	st, b := f.do(tok, "ghl.associations.list", map[string]any{"locationId": e.loc, "skip": "0", "limit": "1"})
	if st != 200 {
		t.Fatalf("associations: %d %s", st, b)
	}
	f.ids["association"] = gjson.GetBytes(b, "id").String()
	f.ids["associationKey"] = gjson.GetBytes(b, "key").String()
	f.ids["member"] = f.first("referralrock.members.new", f.rr, map[string]any{"count": 10}, "id")
	f.ids["referralCode"] = f.first("referralrock.members.new", f.rr, map[string]any{"count": 10}, "referralCode")
	f.ids["program"] = f.first("referralrock.programs.list", f.rr, nil, "id")
	f.ids["referral"] = f.first("referralrock.referrals.new", f.rr, map[string]any{"count": 10}, "id")
	f.ids["reward"] = f.first("referralrock.rewards.new", f.rr, map[string]any{"count": 10, "status": "Pending"}, "id")
	f.ids["rzContact"] = f.first("referrizer.contacts.new", f.rz, nil, "id")
	f.ids["loyalty"] = f.first("referrizer.loyalty_rewards.new", f.rz, nil, "id")
	return f
}

// opCase is how the table test calls one operation.
type opCase struct {
	tok    func(f *fixture) sim.Token
	input  func(f *fixture) map[string]any
	status int
	// check runs after the call, e.g. a later read that must see the effect.
	check func(t *testing.T, f *fixture, body []byte)
}

func future(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

// getStatus performs a read and returns its status and body.
func (f *fixture) get(opID string, input map[string]any) (int, []byte) {
	tok := f.tok
	if strings.HasPrefix(opID, "referralrock.") {
		tok = f.rr
	} else if strings.HasPrefix(opID, "referrizer.") {
		tok = f.rz
	}
	return f.do(tok, opID, input)
}

// expectField asserts a later read shows value at path.
func expectField(opID string, input func(f *fixture, body []byte) map[string]any, path string, want string) func(*testing.T, *fixture, []byte) {
	return func(t *testing.T, f *fixture, body []byte) {
		t.Helper()
		st, b := f.get(opID, input(f, body))
		if st != 200 {
			t.Fatalf("read %s after write: %d %s", opID, st, b)
		}
		if strings.HasPrefix(want, "\x00") {
			want = f.ids[want[1:]]
		}
		if got := gjson.GetBytes(b, path).String(); got != want {
			t.Fatalf("read %s after write: %s = %q, want %q (%s)", opID, path, got, want, b)
		}
	}
}

// expectGone asserts a later read answers 404.
func expectGone(opID string, input func(f *fixture) map[string]any) func(*testing.T, *fixture, []byte) {
	return func(t *testing.T, f *fixture, body []byte) {
		t.Helper()
		if st, b := f.get(opID, input(f)); st != http.StatusNotFound {
			t.Fatalf("read %s after delete: %d %s", opID, st, b)
		}
	}
}

func idFrom(path string) func(f *fixture, body []byte) string {
	return func(f *fixture, body []byte) string { return gjson.GetBytes(body, path).String() }
}

// TestEveryOperation calls every catalog operation over HTTP and checks the
// status, the shape the catalog expects (items at the items path with their
// id, the object at the object or output path) and, for actions, the effect
// in a later read.
func TestEveryOperation(t *testing.T) {
	f := newFixture(t)
	table := cases()
	for _, op := range f.cat.Ops() {
		c := table[op.ID]
		t.Run(op.ID, func(t *testing.T) {
			f.t = t
			f.env.t = t
			tok := f.tok
			switch op.App {
			case "referralrock":
				tok = f.rr
			case "referrizer":
				tok = f.rz
			}
			if c.tok != nil {
				tok = c.tok(f)
			}
			in := f.defaultInput(op)
			if c.input != nil {
				for k, v := range c.input(f) {
					in[k] = v
				}
			}
			st, b := f.do(tok, op.ID, in)
			want := c.status
			if st/100 != 2 || (want != 0 && st != want) {
				t.Fatalf("status %d: %s", st, b)
			}
			checkShape(t, op, b)
			if c.check != nil {
				c.check(t, f, b)
			}
		})
	}
}

// checkShape asserts the response has what the catalog reads from it.
func checkShape(t *testing.T, op *catalog.Operation, b []byte) {
	t.Helper()
	if !gjson.ValidBytes(b) {
		if op.ID == "ghl.conversations.messages.recording" || op.ID == "ghl.conversations.messages.transcription_download" {
			return
		}
		t.Fatalf("invalid JSON: %s", b)
	}
	switch {
	case op.Kind == catalog.KindTrigger && op.Items != "":
		items := gjson.GetBytes(b, op.Items)
		if !items.IsArray() {
			t.Fatalf("no item array at %q: %s", op.Items, b)
		}
		if len(items.Array()) == 0 {
			t.Fatalf("empty item array at %q (seeded data expected): %s", op.Items, b)
		}
		if op.ItemID != "" && !strings.HasPrefix(op.ItemID, "[") {
			for _, it := range items.Array() {
				if it.Get(op.ItemID).String() == "" {
					t.Fatalf("item without %s: %s", op.ItemID, it.Raw)
				}
			}
		}
		if op.Paging != nil && op.Paging.Total != "" && !gjson.GetBytes(b, op.Paging.Total).Exists() {
			t.Fatalf("no total at %s: %s", op.Paging.Total, b)
		}
	case op.Kind == catalog.KindTrigger:
		obj := gjson.ParseBytes(b)
		if op.Object != "" {
			obj = obj.Get(op.Object)
		}
		if !obj.Exists() {
			t.Fatalf("no object at %q: %s", op.Object, b)
		}
		if op.ItemID != "" && obj.Get(op.ItemID).String() == "" {
			t.Fatalf("object without %s: %s", op.ItemID, b)
		}
	case op.Output != "":
		if out := gjson.GetBytes(b, op.Output); !out.IsObject() && !out.IsArray() {
			t.Fatalf("no object at output %q: %s", op.Output, b)
		}
	}
}
