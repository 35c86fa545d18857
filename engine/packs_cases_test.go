package engine_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	rzPack = "../catalog/recipes/referrizer/"
	rrPack = "../catalog/recipes/referralrock/"
)

// packCases are the end-to-end runs of every shipped pack recipe.
var packCases = []packCase{
	{recipe: rzPack + "contact-sync.yaml",
		act: func(f *packFixture, v map[string]string) {
			v["ghl"] = ghlContact(f, map[string]any{"firstName": "Ann", "lastName": "Lee", "email": "ann@example.com",
				"phone": "+15550100001", "tags": []any{"vip"}})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "referrizer.contacts.upsert", path: "/v1/contacts", fields: map[string]string{
				"firstName": "Ann", "lastName": "Lee", "email": "ann@example.com", "phone": "+15550100001", "tags": `["vip"]`}}}
		}},
	{recipe: rzPack + "task-to-referrizer.yaml",
		seed: func(f *packFixture) map[string]string {
			return map[string]string{"ghl": ghlContact(f, map[string]any{"firstName": "Bo", "email": "bo@example.com"}),
				"rz": rzContact(f, "bo@example.com", "Bo")}
		},
		act: func(f *packFixture, v map[string]string) { v["task"] = ghlTask(f, v["ghl"], "Call Bo") },
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "referrizer.tasks.create", path: "/v1/tasks", fields: map[string]string{
				"contactId": v["rz"], "title": "Call Bo", "dueDate": "2030-01-02T10:00:00Z", "status": "OPEN",
				"completed": "false", "externalId": v["task"], "ghlContactId": v["ghl"]}}}
		}},
	// A GHL task already linked to a Referrizer task changes: the linked
	// task is updated, not made again.
	{recipe: rzPack + "task-to-referrizer.yaml",
		seed: func(f *packFixture) map[string]string {
			v := map[string]string{"ghl": ghlContact(f, map[string]any{"firstName": "Eve", "email": "eve@example.com"}),
				"rz": rzContact(f, "eve@example.com", "Eve")}
			v["task"] = ghlTask(f, v["ghl"], "Call Eve")
			out := f.call("referrizer.tasks.create", nil, map[string]any{"contactId": v["rz"], "title": "Call Eve",
				"dueDate": "2030-01-02T10:00:00Z", "externalId": v["task"], "ghlContactId": v["ghl"]})
			v["rzTask"] = gjson.GetBytes(out, "id").String()
			return v
		},
		act: func(f *packFixture, v map[string]string) {
			f.call("ghl.contacts.tasks.update", map[string]string{"contactId": v["ghl"], "taskId": v["task"]},
				map[string]any{"title": "Call Eve about the voucher", "dueDate": "2030-01-05T09:00:00Z", "completed": true})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "referrizer.tasks.update", path: "/v1/tasks/" + v["rzTask"], fields: map[string]string{
				"title": "Call Eve about the voucher", "dueDate": "2030-01-05T09:00:00Z", "status": "COMPLETED", "completed": "true"}}}
		}},
	{recipe: rzPack + "task-to-ghl.yaml",
		seed: func(f *packFixture) map[string]string {
			return map[string]string{"ghl": ghlContact(f, map[string]any{"firstName": "Cy", "email": "cy@example.com"}),
				"rz": rzContact(f, "cy@example.com", "Cy")}
		},
		act: func(f *packFixture, v map[string]string) {
			out := f.call("referrizer.tasks.create", nil, map[string]any{"contactId": v["rz"], "title": "Send voucher",
				"dueDate": "2030-01-03T00:00:00Z"})
			v["rzTask"] = gjson.GetBytes(out, "id").String()
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.tasks.create", path: "/contacts/" + v["ghl"] + "/tasks", fields: map[string]string{
					"title": "Send voucher", "dueDate": "2030-01-03T00:00:00Z", "completed": "false"}},
				{op: "referrizer.tasks.update", path: "/v1/tasks/" + v["rzTask"], fields: map[string]string{
					"ghlContactId": v["ghl"]}},
			}
		}},
	{recipe: rzPack + "task-completed-to-ghl.yaml",
		seed: func(f *packFixture) map[string]string {
			v := map[string]string{"ghl": ghlContact(f, map[string]any{"firstName": "Di", "email": "di@example.com"}),
				"rz": rzContact(f, "di@example.com", "Di")}
			v["task"] = ghlTask(f, v["ghl"], "Call Di")
			out := f.call("referrizer.tasks.create", nil, map[string]any{"contactId": v["rz"], "title": "Call Di",
				"externalId": v["task"], "ghlContactId": v["ghl"]})
			v["rzTask"] = gjson.GetBytes(out, "id").String()
			return v
		},
		act: func(f *packFixture, v map[string]string) {
			f.call("referrizer.tasks.update", map[string]string{"taskId": v["rzTask"]}, map[string]any{"completed": true, "status": "COMPLETED"})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "ghl.contacts.tasks.complete", path: "/contacts/" + v["ghl"] + "/tasks/" + v["task"] + "/completed",
				fields: map[string]string{"completed": "true"}}}
		}},
	{recipe: rzPack + "notes-and-tags.yaml",
		seed: func(f *packFixture) map[string]string {
			return map[string]string{"ghl": ghlContact(f, map[string]any{"firstName": "Ed", "email": "ed@example.com"}),
				"rz": rzContact(f, "ed@example.com", "Ed")}
		},
		act: func(f *packFixture, v map[string]string) {
			f.srv.UpdateContact(packLoc, v["ghl"], map[string]any{"tags": []any{"gold", "newsletter"}})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "referrizer.contacts.tags.add", path: "/v1/contacts/" + v["rz"] + "/tags", fields: map[string]string{"tags": `["gold","newsletter"]`}},
				{op: "referrizer.contacts.notes.add", path: "/v1/contacts/" + v["rz"] + "/notes", fields: map[string]string{"content": "Tags in GHL: gold, newsletter"}},
			}
		}},
	{recipe: rzPack + "lead-source-tags.yaml",
		act: func(f *packFixture, v map[string]string) {
			ghlContact(f, map[string]any{"firstName": "Fay", "email": "fay@example.com", "source": "Facebook"})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "referrizer.contacts.upsert", path: "/v1/contacts", fields: map[string]string{
				"email": "fay@example.com", "firstName": "Fay", "tags": `["source-facebook"]`}}}
		}},
	{recipe: rzPack + "lead-follow-up.yaml",
		seed: func(f *packFixture) map[string]string {
			return map[string]string{"rz": rzContact(f, "gus@example.com", "Gus")}
		},
		act: func(f *packFixture, v map[string]string) {
			ghlContact(f, map[string]any{"firstName": "Gus", "lastName": "Hale", "email": "gus@example.com"})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "referrizer.contacts.upsert", path: "/v1/contacts", fields: map[string]string{"email": "gus@example.com", "lastName": "Hale"}},
				{op: "referrizer.tasks.create", path: "/v1/tasks", fields: map[string]string{"contactId": v["rz"],
					"title": "Follow up with Gus", "status": "OPEN"}},
			}
		}},
	{recipe: rzPack + "note-campaign.yaml",
		seed: func(f *packFixture) map[string]string {
			return map[string]string{"ghl": ghlContact(f, map[string]any{"firstName": "Hal", "email": "hal@example.com"}),
				"rz": rzContact(f, "hal@example.com", "Hal")}
		},
		act: func(f *packFixture, v map[string]string) {
			ghlTask(f, v["ghl"], "Plain call")
			ghlTask(f, v["ghl"], "#invite Hal to the referral program")
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "referrizer.contacts.upsert", path: "/v1/contacts", fields: map[string]string{"email": "hal@example.com"}},
				{op: "referrizer.contacts.invite", path: "/v1/contacts/" + v["rz"] + "/invite", fields: map[string]string{
					"message": "#invite Hal to the referral program"}},
			}
		}},

	{recipe: rrPack + "contact-to-member.yaml",
		act: func(f *packFixture, v map[string]string) {
			v["ghl"] = ghlContact(f, map[string]any{"firstName": "Ida", "lastName": "Moss", "email": "ida@example.com", "phone": "+15550100002"})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "referralrock.members.create", path: "/api/members", fields: map[string]string{
				"firstName": "Ida", "lastName": "Moss", "email": "ida@example.com", "phone": "+15550100002", "externalIdentifier": v["ghl"]}}}
		}},
	{recipe: rrPack + "task-notes-to-referral.yaml",
		seed: func(f *packFixture) map[string]string {
			rrMember(f, "mia@example.com", "mia-code")
			return map[string]string{"referral": rrReferral(f, "mia-code", "jo@example.com", "Jo"),
				"ghl": ghlContact(f, map[string]any{"firstName": "Jo", "email": "jo@example.com"})}
		},
		act: func(f *packFixture, v map[string]string) { ghlTask(f, v["ghl"], "Call Jo") },
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "referralrock.referrals.update", path: "/api/referral/update", fields: map[string]string{
				"0.query.secondaryInfo.email": "jo@example.com", "0.referral.note": `GHL task "Call Jo" due 2030-01-02T10:00:00Z`}}}
		}},
	{recipe: rrPack + "referral-to-task.yaml",
		seed: func(f *packFixture) map[string]string { rrMember(f, "mia@example.com", "mia-code"); return nil },
		act: func(f *packFixture, v map[string]string) {
			v["referral"] = rrReferral(f, "mia-code", "kim@example.com", "Kim")
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{"email": "kim@example.com",
					"firstName": "Kim", "lastName": "Park"}},
				{op: "ghl.contacts.tasks.create", path: "/tasks", fields: map[string]string{
					"title": "Contact referral Kim Park from Mia Stone", "completed": "false",
					"body": "Referral Rock referral " + v["referral"]}},
			}
		}},
	{recipe: rrPack + "referral-status-to-task.yaml",
		seed: func(f *packFixture) map[string]string {
			rrMember(f, "mia@example.com", "mia-code")
			return map[string]string{"referral": rrReferral(f, "mia-code", "lu@example.com", "Lu")}
		},
		act: func(f *packFixture, v map[string]string) {
			f.call("referralrock.referrals.update_status", nil, []any{map[string]any{
				"query": map[string]any{"primaryInfo": map[string]any{"referralId": v["referral"]}}, "referral": map[string]any{"status": "approved"}}})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{"email": "lu@example.com"}},
				{op: "ghl.contacts.tasks.create", path: "/tasks", fields: map[string]string{
					"title": "Referral approved: Lu Park", "completed": "true", "body": "Referral Rock referral " + v["referral"]}},
			}
		}},
	// The referral's task exists (rr-referral-to-task made it): it is
	// updated, not made again.
	{recipe: rrPack + "referral-status-to-task.yaml",
		seed: func(f *packFixture) map[string]string {
			rrMember(f, "mia@example.com", "mia-code")
			v := map[string]string{"referral": rrReferral(f, "mia-code", "uma@example.com", "Uma"),
				"ghl": ghlContact(f, map[string]any{"firstName": "Uma", "email": "uma@example.com"})}
			ghlTask(f, v["ghl"], "An unrelated task")
			out := f.call("ghl.contacts.tasks.create", map[string]string{"contactId": v["ghl"]}, map[string]any{
				"title": "Contact referral Uma Park from Mia Stone", "body": "Referral Rock referral " + v["referral"],
				"dueDate": "2030-01-02T10:00:00Z", "completed": false})
			v["task"] = gjson.GetBytes(out, "task.id").String()
			return v
		},
		act: func(f *packFixture, v map[string]string) {
			f.call("referralrock.referrals.update_status", nil, []any{map[string]any{
				"query": map[string]any{"primaryInfo": map[string]any{"referralId": v["referral"]}}, "referral": map[string]any{"status": "approved"}}})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{"email": "uma@example.com"}},
				{op: "ghl.contacts.tasks.update", path: "/contacts/" + v["ghl"] + "/tasks/" + v["task"], fields: map[string]string{
					"title": "Referral approved: Uma Park", "completed": "true"}},
			}
		}},
	{recipe: rrPack + "referral-notes-to-ghl.yaml",
		seed: func(f *packFixture) map[string]string {
			rrMember(f, "mia@example.com", "mia-code")
			return map[string]string{"referral": rrReferral(f, "mia-code", "max@example.com", "Max")}
		},
		act: func(f *packFixture, v map[string]string) {
			rrUpdateReferral(f, v["referral"], map[string]any{"note": "Loves the product"})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{"email": "max@example.com"}},
				{op: "ghl.contacts.notes.create", path: "/notes", fields: map[string]string{"body": "Referral Rock note: Loves the product"}},
				{op: "ghl.contacts.tags.add", path: "/tags", fields: map[string]string{"tags": `["referral-rock"]`}},
			}
		}},
	{recipe: rrPack + "source-tags.yaml",
		seed: func(f *packFixture) map[string]string { rrMember(f, "mia@example.com", "mia-code"); return nil },
		act:  func(f *packFixture, v map[string]string) { rrReferral(f, "mia-code", "ned@example.com", "Ned") },
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{
				"email": "ned@example.com", "source": "Referral Rock", "tags": `["rr-program-friends and family","rr-source-direct"]`}}}
		}},
	{recipe: rrPack + "onboarding-tasks.yaml",
		seed: func(f *packFixture) map[string]string { rrMember(f, "mia@example.com", "mia-code"); return nil },
		act:  func(f *packFixture, v map[string]string) { rrReferral(f, "mia-code", "ola@example.com", "Ola") },
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{"email": "ola@example.com", "firstName": "Ola"}},
				{op: "ghl.contacts.tasks.create", path: "/tasks", fields: map[string]string{"title": "Welcome call", "completed": "false"}},
				{op: "ghl.contacts.tasks.create", path: "/tasks", fields: map[string]string{"title": "Send the information pack"}},
				{op: "ghl.contacts.tasks.create", path: "/tasks", fields: map[string]string{"title": "One-week check-in"}},
			}
		}},
	{recipe: rrPack + "engagement-notes.yaml",
		seed: func(f *packFixture) map[string]string {
			out := f.call("referralrock.rewards.create", nil, []any{map[string]any{
				"memberQuery": map[string]any{"primaryInfo": map[string]any{"memberId": rrMember(f, "pia@example.com", "pia-code")}},
				"newReward":   map[string]any{"payoutId": "p1", "amount": 25}}})
			return map[string]string{"reward": gjson.GetBytes(out, "0.reward.id").String()}
		},
		act: func(f *packFixture, v map[string]string) {
			f.call("referralrock.rewards.issue", nil, map[string]any{"rewardId": v["reward"]})
		},
		want: func(v map[string]string) []wantWrite {
			return []wantWrite{
				{op: "ghl.contacts.upsert", path: "/contacts/upsert", fields: map[string]string{"email": "pia@example.com"}},
				{op: "ghl.contacts.notes.create", path: "/notes", fields: map[string]string{"body": "Referral Rock reward issued: 25 (Issued)."}},
			}
		}},
}

// TestRecipePacks runs every shipped pack recipe end to end for a tenant
// with GHL, Referrizer and Referral Rock connected: the trigger condition
// made in the simulator brings exactly the wanted writes to the other app,
// and the following polls write nothing more.
func TestRecipePacks(t *testing.T) {
	overlapInShort(t)
	shipped := map[string]bool{}
	for _, c := range packCases {
		shipped[c.recipe] = true
	}
	for _, dir := range []string{rzPack, rrPack} {
		files, _ := filepathGlob(dir + "*.yaml")
		for _, file := range files {
			if !shipped[file] {
				t.Errorf("%s has no end-to-end case", file)
			}
		}
	}
	sampled := map[string]bool{} // -short runs the first case of each pack
	for _, c := range packCases {
		pack := filepath.Dir(c.recipe)
		if testing.Short() && sampled[pack] {
			continue
		}
		sampled[pack] = true
		t.Run(baseName(c.recipe), func(t *testing.T) {
			t.Parallel()
			f := newPackFixture(t)
			v := map[string]string{}
			if c.seed != nil {
				for k, x := range c.seed(f) {
					v[k] = x
				}
			}
			f.start(allConns(), c.recipe)
			c.act(f, v)
			f.checkWrites(c.want(v), 1500*time.Millisecond)
		})
	}
}

func filepathGlob(p string) ([]string, error) { return filepath.Glob(p) }

func baseName(p string) string { return strings.TrimSuffix(filepath.Base(p), ".yaml") }
