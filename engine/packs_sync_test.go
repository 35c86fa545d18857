package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/engine"
)

// TestPackUpsertUpdatesTheCounterpart: a GHL contact whose counterpart
// already exists on the other side updates it instead of adding a second
// one (Referrizer by email through its upsert; Referral Rock by a member
// lookup, then the when: branch that updates).
func TestPackUpsertUpdatesTheCounterpart(t *testing.T) {
	overlapInShort(t)
	t.Run("referrizer", func(t *testing.T) {
		t.Parallel()
		f := newPackFixture(t)
		rz := rzContact(f, "uma@example.com", "U")
		f.start(allConns(), rzPack+"contact-sync.yaml")
		ghlContact(f, map[string]any{"firstName": "Uma", "lastName": "Vance", "email": "uma@example.com"})
		f.checkWrites([]wantWrite{{op: "referrizer.contacts.upsert", path: "/v1/contacts",
			fields: map[string]string{"email": "uma@example.com", "firstName": "Uma"}}}, time.Second)
		list := f.call("referrizer.contacts.new", nil, nil)
		same := gjson.GetBytes(list, `#(email=="uma@example.com")#`).Array()
		if len(same) != 1 || same[0].Get("id").String() != rz || same[0].Get("firstName").String() != "Uma" ||
			same[0].Get("lastName").String() != "Vance" {
			t.Fatalf("Referrizer contacts with the email: %v (want one, id %s, updated)", same, rz)
		}
	})
	t.Run("referralrock", func(t *testing.T) {
		t.Parallel()
		f := newPackFixture(t)
		member := rrMember(f, "val@example.com", "val-code")
		f.start(allConns(), rrPack+"contact-to-member.yaml")
		ghlContact(f, map[string]any{"firstName": "Val", "lastName": "West", "email": "val@example.com"})
		f.checkWrites([]wantWrite{{op: "referralrock.members.update", path: "/api/members/update", fields: map[string]string{
			"0.query.primaryInfo.memberId": member, "0.member.firstName": "Val", "0.member.lastName": "West"}}}, time.Second)
		list := f.call("referralrock.members.new", nil, nil)
		same := gjson.GetBytes(list, `members.#(email=="val@example.com")#`).Array()
		if len(same) != 1 || same[0].Get("lastName").String() != "West" {
			t.Fatalf("members with the email: %v (want one, updated)", same)
		}
	})
}

// TestTwoWayTaskSyncDoesNotLoop runs both directions of the GHL ⇄
// Referrizer task sync together. One change on each side (a task added in
// GHL, then completed in Referrizer) makes exactly one write on the other
// side each, through ten more poll cycles: each write's echo is recognised
// and not synced back.
func TestTwoWayTaskSyncDoesNotLoop(t *testing.T) {
	overlapInShort(t)
	f := newPackFixture(t)
	ghl := ghlContact(f, map[string]any{"firstName": "Wes", "email": "wes@example.com"})
	rz := rzContact(f, "wes@example.com", "Wes")
	f.start(allConns(), rzPack+"task-to-referrizer.yaml", rzPack+"task-completed-to-ghl.yaml", rzPack+"task-to-ghl.yaml")

	task := ghlTask(f, ghl, "Call Wes")
	until(t, 15*time.Second, "the task in Referrizer", func() bool { return len(f.writesOf("referrizer.tasks.create")) == 1 })
	rzTask := gjson.GetBytes(f.call("referrizer.tasks.find", nil, nil), `#(externalId=="`+task+`").id`).String()
	if rzTask == "" {
		t.Fatal("no Referrizer task linked to the GHL task")
	}
	f.call("referrizer.tasks.update", map[string]string{"taskId": rzTask}, map[string]any{"completed": true, "status": "COMPLETED"})
	took := until(t, 15*time.Second, "the completion in GHL", func() bool { return len(f.writesOf("ghl.contacts.tasks.complete")) == 1 })
	t.Logf("completion reached GHL after %s; failed chains: %v", took.Round(time.Millisecond), f.failedChains())

	// Ten more poll cycles of each subscription (two poll Referrizer's tasks,
	// one GHL's).
	rzPolls, ghlPolls := f.srv.RequestCount("referrizer.tasks.new", ""), f.srv.RequestCount("ghl.tasks.search", "")
	until(t, 30*time.Second, "ten poll cycles", func() bool {
		return f.srv.RequestCount("referrizer.tasks.new", "") >= rzPolls+20 && f.srv.RequestCount("ghl.tasks.search", "") >= ghlPolls+10
	})
	time.Sleep(500 * time.Millisecond) // the chains of the last polls
	toRZ, toGHL := 0, 0
	for _, w := range f.writes() {
		if strings.HasPrefix(w.Op, "referrizer.") {
			toRZ++
		} else {
			toGHL++
		}
	}
	if toRZ != 1 || toGHL != 1 {
		t.Fatalf("writes to Referrizer %d, to GHL %d; want 1 and 1: %+v", toRZ, toGHL, f.writes())
	}
	got := gjson.GetBytes(f.call("ghl.contacts.tasks.get", map[string]string{"contactId": ghl, "taskId": task}, nil), "task.completed")
	if !got.Bool() {
		t.Errorf("GHL task not completed: %s", got.Raw)
	}
	echoes := 0
	f.mu.Lock()
	for _, r := range f.results {
		if r.Status == engine.ChainEcho {
			echoes++
		}
	}
	f.mu.Unlock()
	if echoes == 0 {
		t.Error("no item was recognised as an echo")
	}
	t.Logf("echoes skipped: %d; Referrizer contact %s", echoes, rz)
}

// TestTenantWithoutReferrizerGetsNoReferrizerPack: a tenant that connects
// GHL and Referral Rock only runs the Referral Rock pack, none of the
// Referrizer pack, and the log says why for each Referrizer recipe.
func TestTenantWithoutReferrizerGetsNoReferrizerPack(t *testing.T) {
	overlapInShort(t)
	f := newPackFixture(t)
	f.log = &logBuffer{}
	eng := f.start(map[string]string{"ghl": "ghl-pack", "referralrock": "rr-pack"}, rzPack, rrPack)
	subs := eng.Registry().All()
	rr, _ := filepathGlob(rrPack + "*.yaml")
	rzFiles, _ := filepathGlob(rzPack + "*.yaml")
	if len(subs) != len(rr) {
		t.Errorf("%d subscriptions, want the %d Referral Rock recipes", len(subs), len(rr))
	}
	for _, s := range subs {
		if !strings.HasPrefix(s.Recipe.Name, "rr-") {
			t.Errorf("subscription of %s for a tenant without Referrizer", s.Recipe.Name)
		}
	}
	log := f.log.String()
	if n := strings.Count(log, "recipe not run for tenant: it has no connection for a role"); n < len(rzFiles) {
		t.Errorf("%d log lines say why, want one per Referrizer recipe (%d):\n%s", n, len(rzFiles), log)
	}
	if !strings.Contains(log, "recipe=rz-contact-sync missing=referrizer") {
		t.Errorf("the log does not name the missing role:\n%s", log)
	}
	ghlContact(f, map[string]any{"firstName": "Xena", "email": "xena@example.com"})
	time.Sleep(1500 * time.Millisecond)
	for _, w := range f.srv.Writes("") {
		if strings.HasPrefix(w.Op, "referrizer.") {
			t.Errorf("Referrizer received %s %s", w.Method, w.Path)
		}
	}
}
