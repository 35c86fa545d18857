package sim_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/tidwall/gjson"
)

// defaultInput fills an operation's required inputs from the fixture.
func (f *fixture) defaultInput(op *catalog.Operation) map[string]any {
	in := map[string]any{}
	for _, p := range op.Inputs {
		if !p.Required {
			continue
		}
		in[p.Name] = f.value(op, p)
	}
	return in
}

func (f *fixture) value(op *catalog.Operation, p catalog.Input) any {
	rz := op.App == "referrizer"
	switch p.Name {
	case "contactId":
		if rz {
			return f.ids["rzContact"]
		}
		return f.ids["contact"]
	case "locationId", "location_id":
		return f.loc
	case "companyId":
		return f.company
	case "calendarId":
		return f.ids["calendar"]
	case "groupId":
		return f.ids["group"]
	case "eventId", "appointmentId":
		return f.ids["event"]
	case "noteId":
		return f.ids["apptNote"]
	case "notificationId":
		return f.ids["notification"]
	case "resourceType":
		return "rooms"
	case "businessId":
		return f.ids["business"]
	case "conversationId":
		return f.ids["conversation"]
	case "messageId":
		return f.ids["message"]
	case "userId":
		return f.ids["user"]
	case "workflowId":
		return f.ids["workflow"]
	case "campaignId":
		return f.ids["campaign"]
	case "associationId":
		return f.ids["association"]
	case "key_name":
		return f.ids["associationKey"]
	case "recordId":
		return f.ids["contact"]
	case "postId":
		return f.ids["post"]
	case "blogId":
		return f.ids["blog"]
	case "pipelineId":
		return f.ids["pipeline"]
	case "loyaltyRewardId":
		return f.ids["loyalty"]
	case "startTime", "startDate":
		if p.In == "query" {
			return "0"
		}
		return future(72 * time.Hour)
	case "endTime", "endDate":
		if p.In == "query" {
			return fmt.Sprint(time.Now().Add(30 * 24 * time.Hour).UnixMilli())
		}
		return future(73 * time.Hour)
	case "limit", "count", "pageLimit":
		if p.Type == "number" || p.Type == "integer" {
			return 10
		}
		return "10"
	case "offset", "skip":
		if p.Type == "number" || p.Type == "integer" {
			return 0
		}
		return "0"
	case "email":
		return fmt.Sprintf("new%d@example.com", time.Now().UnixNano())
	}
	switch p.Type {
	case "number", "integer":
		return 1
	case "boolean":
		return true
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	case "datetime":
		return future(24 * time.Hour)
	}
	if len(p.Enum) > 0 {
		return p.Enum[0]
	}
	return "x-" + p.Name
}

func agencyTok(f *fixture) sim.Token { return f.agency }

// create runs a create operation and returns the id at path of its answer.
func (f *fixture) create(opID string, tok sim.Token, input map[string]any, path string) string {
	f.t.Helper()
	op := f.cat.MustOp(opID)
	in := f.defaultInput(op)
	for k, v := range input {
		in[k] = v
	}
	st, b := f.do(tok, opID, in)
	if st/100 != 2 {
		f.t.Fatalf("setup %s: %d %s", opID, st, b)
	}
	id := gjson.GetBytes(b, path).String()
	if id == "" {
		f.t.Fatalf("setup %s: no %s in %s", opID, path, b)
	}
	return id
}

// cases override the default inputs and add the later reads that must see
// an action's effect.
func cases() map[string]opCase {
	return map[string]opCase{
		"ghl.contacts.search": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "pageLimit": 10}
		}},
		"ghl.contacts.find": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "pageLimit": 1, "filters": []any{map[string]any{"field": "id", "operator": "eq", "value": f.ids["contact"]}}}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			if gjson.GetBytes(b, "contacts.0.id").String() != f.ids["contact"] {
				t.Fatalf("find by id: %s", b)
			}
		}},
		"ghl.contacts.duplicate": {input: func(f *fixture) map[string]any {
			st, b := f.do(f.tok, "ghl.contacts.get", map[string]any{"contactId": f.ids["contact"]})
			if st != 200 {
				f.t.Fatal(st)
			}
			return map[string]any{"locationId": f.loc, "email": gjson.GetBytes(b, "contact.email").String()}
		}},
		"ghl.contacts.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "firstName": "Grace", "email": "grace@example.com"}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": idFrom("contact.id")(f, b)}
		}, "contact.firstName", "Grace")},
		"ghl.contacts.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "city": "Paris"}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, "contact.city", "Paris")},
		"ghl.contacts.upsert": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "email": "upsert@example.com", "lastName": "Hopper"}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": idFrom("contact.id")(f, b)}
		}, "contact.lastName", "Hopper")},
		"ghl.contacts.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadContact"] = f.create("ghl.contacts.create", f.tok, map[string]any{"email": "gone@example.com"}, "contact.id")
			return map[string]any{"contactId": f.ids["deadContact"]}
		}, check: expectGone("ghl.contacts.get", func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["deadContact"]}
		})},
		"ghl.contacts.tags.add": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "tags": []any{"added-tag"}}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, `contact.tags.#(=="added-tag")`, "added-tag")},
		"ghl.contacts.tags.remove": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "tags": []any{"added-tag"}}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, `contact.tags.#(=="added-tag")`, "")},
		"ghl.contacts.tags.bulk_update": {input: func(f *fixture) map[string]any {
			return map[string]any{"type": "add", "contacts": []any{f.ids["contact"]}, "tags": []any{"bulk"}, "locationId": f.loc}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, `contact.tags.#(=="bulk")`, "bulk")},
		"ghl.contacts.followers.add": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "followers": []any{f.ids["user"]}}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, "contact.followers.0", "\x00user")},
		"ghl.contacts.tasks.list": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}},
		"ghl.contacts.tasks.find": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}},
		"ghl.contacts.tasks.get": {input: func(f *fixture) map[string]any {
			f.ids["task"] = f.create("ghl.contacts.tasks.create", f.tok, map[string]any{"title": "T", "completed": false}, "task.id")
			return map[string]any{"contactId": f.ids["contact"], "taskId": f.ids["task"]}
		}},
		"ghl.contacts.tasks.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "title": "Call back", "dueDate": future(time.Hour), "completed": false}
		}, check: expectField("ghl.contacts.tasks.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "taskId": idFrom("task.id")(f, b)}
		}, "task.title", "Call back")},
		"ghl.contacts.tasks.update": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.contacts.tasks.create", f.tok, map[string]any{"title": "T", "completed": false}, "task.id")
			return map[string]any{"contactId": f.ids["contact"], "taskId": id, "title": "Renamed", "dueDate": future(time.Hour), "completed": false}
		}, check: expectField("ghl.contacts.tasks.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "taskId": idFrom("task.id")(f, b)}
		}, "task.title", "Renamed")},
		"ghl.contacts.tasks.complete": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.contacts.tasks.create", f.tok, map[string]any{"title": "T", "completed": false}, "task.id")
			return map[string]any{"contactId": f.ids["contact"], "taskId": id, "completed": true}
		}, check: expectField("ghl.contacts.tasks.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "taskId": idFrom("task.id")(f, b)}
		}, "task.completed", "true")},
		"ghl.contacts.tasks.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadTask"] = f.create("ghl.contacts.tasks.create", f.tok, map[string]any{"title": "T", "completed": false}, "task.id")
			return map[string]any{"contactId": f.ids["contact"], "taskId": f.ids["deadTask"]}
		}, check: expectGone("ghl.contacts.tasks.get", func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "taskId": f.ids["deadTask"]}
		})},
		"ghl.contacts.notes.get": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.contacts.notes.create", f.tok, map[string]any{"body": "n"}, "note.id")
			return map[string]any{"contactId": f.ids["contact"], "id": id}
		}},
		"ghl.contacts.notes.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "body": "Spoke on the phone"}
		}, check: expectField("ghl.contacts.notes.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "id": idFrom("note.id")(f, b)}
		}, "note.body", "Spoke on the phone")},
		"ghl.contacts.notes.update": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.contacts.notes.create", f.tok, map[string]any{"body": "n"}, "note.id")
			return map[string]any{"contactId": f.ids["contact"], "id": id, "body": "edited"}
		}, check: expectField("ghl.contacts.notes.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "id": idFrom("note.id")(f, b)}
		}, "note.body", "edited")},
		"ghl.contacts.notes.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadNote"] = f.create("ghl.contacts.notes.create", f.tok, map[string]any{"body": "n"}, "note.id")
			return map[string]any{"contactId": f.ids["contact"], "id": f.ids["deadNote"]}
		}, check: expectGone("ghl.contacts.notes.get", func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["contact"], "id": f.ids["deadNote"]}
		})},
		"ghl.appointments.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"calendarId": f.ids["calendar"], "locationId": f.loc, "contactId": f.ids["contact"],
				"startTime": future(96 * time.Hour), "title": "Demo"}
		}, check: expectField("ghl.appointments.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"eventId": idFrom("id")(f, b)}
		}, "event.title", "Demo")},
		"ghl.appointments.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"eventId": f.ids["event"], "title": "Moved"}
		}, check: expectField("ghl.appointments.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"eventId": f.ids["event"]}
		}, "event.title", "Moved")},
		"ghl.appointments.events.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadEvent"] = f.create("ghl.appointments.create", f.tok, nil, "id")
			return map[string]any{"eventId": f.ids["deadEvent"]}
		}, check: expectGone("ghl.appointments.get", func(f *fixture) map[string]any {
			return map[string]any{"eventId": f.ids["deadEvent"]}
		})},
		"ghl.appointments.block_slots.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"eventId": f.ids["blocked"], "calendarId": f.ids["calendar"], "locationId": f.loc, "title": "Gym"}
		}},
		"ghl.appointments.notes.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"appointmentId": f.ids["event"], "body": "Bring slides"}
		}, check: expectField("ghl.appointments.notes.list", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"appointmentId": f.ids["event"], "limit": "100", "offset": "0"}
		}, `notes.#(body=="Bring slides").body`, "Bring slides")},
		"ghl.appointments.notes.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"appointmentId": f.ids["event"], "noteId": f.ids["apptNote"], "body": "Edited note"}
		}, check: expectField("ghl.appointments.notes.list", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"appointmentId": f.ids["event"], "limit": "100", "offset": "0"}
		}, `notes.#(body=="Edited note").body`, "Edited note")},
		"ghl.appointments.notes.delete": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.appointments.notes.create", f.tok, map[string]any{"body": "x"}, "note.id")
			return map[string]any{"appointmentId": f.ids["event"], "noteId": id}
		}},
		"ghl.associations.by_object_key": {input: func(f *fixture) map[string]any {
			return map[string]any{"objectKey": f.ids["association"], "locationId": f.loc}
		}},
		"ghl.associations.by_key": {input: func(f *fixture) map[string]any {
			return map[string]any{"key_name": f.ids["association"], "locationId": f.loc}
		}},
		"ghl.associations.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"associationId": f.ids["association"], "firstObjectLabel": "Person", "secondObjectLabel": "Company"}
		}, check: expectField("ghl.associations.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"associationId": f.ids["association"]}
		}, "firstObjectLabel", "Person")},
		"ghl.associations.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadAssoc"] = f.create("ghl.associations.create", f.tok, nil, "id")
			return map[string]any{"associationId": f.ids["deadAssoc"]}
		}, check: expectGone("ghl.associations.get", func(f *fixture) map[string]any {
			return map[string]any{"associationId": f.ids["deadAssoc"]}
		})},
		"ghl.relations.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "associationId": f.ids["association"], "firstRecordId": f.ids["contact"], "secondRecordId": "other-record"}
		}},
		"ghl.relations.delete": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.relations.create", f.tok, map[string]any{"firstRecordId": "a", "secondRecordId": "b"}, "id")
			return map[string]any{"relationId": id, "locationId": f.loc}
		}},
		"ghl.blogs.posts.create": {input: func(f *fixture) map[string]any {
			in := f.defaultInput(f.cat.MustOp("ghl.blogs.posts.create"))
			in["urlSlug"], in["categories"], in["title"] = "brand-new", []any{}, "Launch"
			return in
		}, check: expectField("ghl.blogs.slug_exists", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"urlSlug": "brand-new", "locationId": f.loc}
		}, "exists", "true")},
		"ghl.blogs.posts.update": {input: func(f *fixture) map[string]any {
			in := f.defaultInput(f.cat.MustOp("ghl.blogs.posts.update"))
			in["title"], in["urlSlug"] = "Retitled", "retitled"
			return in
		}, check: func(t *testing.T, f *fixture, b []byte) {
			expectField("ghl.blogs.posts.list", func(f *fixture, b []byte) map[string]any {
				return map[string]any{"locationId": f.loc, "blogId": f.ids["blog"], "limit": "100", "offset": "0"}
			}, `blogs.#(_id=="`+f.ids["post"]+`").title`, "Retitled")(t, f, b)
		}},
		"ghl.businesses.create": {check: expectField("ghl.businesses.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"businessId": idFrom("buiseness.id")(f, b)}
		}, "business.name", "x-name")},
		"ghl.businesses.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"businessId": f.ids["business"], "city": "Lyon"}
		}, check: expectField("ghl.businesses.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"businessId": f.ids["business"]}
		}, "business.city", "Lyon")},
		"ghl.businesses.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadBiz"] = f.create("ghl.businesses.create", f.tok, nil, "buiseness.id")
			return map[string]any{"businessId": f.ids["deadBiz"]}
		}, check: expectGone("ghl.businesses.get", func(f *fixture) map[string]any {
			return map[string]any{"businessId": f.ids["deadBiz"]}
		})},
		"ghl.businesses.bulk_contacts": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "ids": []any{f.ids["contact"]}, "businessId": f.ids["business"]}
		}, check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, "contact.businessId", "\x00business")},
		"ghl.calendars.groups.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"locationId": f.loc, "name": "Support", "description": "d", "slug": "support-team"}
		}, check: expectField("ghl.calendars.groups.list", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"locationId": f.loc}
		}, `groups.#(slug=="support-team").name`, "Support")},
		"ghl.calendars.groups.status": {input: func(f *fixture) map[string]any {
			return map[string]any{"groupId": f.ids["group"], "isActive": false}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			expectField("ghl.calendars.groups.list", func(f *fixture, b []byte) map[string]any {
				return map[string]any{"locationId": f.loc}
			}, `groups.#(id=="`+f.ids["group"]+`").isActive`, "false")(t, f, b)
		}},
		"ghl.calendars.groups.delete": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.calendars.groups.create", f.tok, map[string]any{"slug": "to-delete"}, "group.id")
			return map[string]any{"groupId": id}
		}},
		"ghl.calendars.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"calendarId": f.ids["calendar"], "name": "Intro call"}
		}, check: expectField("ghl.calendars.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"calendarId": f.ids["calendar"]}
		}, "calendar.name", "Intro call")},
		"ghl.calendars.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadCal"] = f.create("ghl.calendars.create", f.tok, nil, "calendar.id")
			return map[string]any{"calendarId": f.ids["deadCal"]}
		}, check: expectGone("ghl.calendars.get", func(f *fixture) map[string]any {
			return map[string]any{"calendarId": f.ids["deadCal"]}
		})},
		"ghl.calendars.notifications.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"calendarId": f.ids["calendar"], "notificationId": f.ids["notification"], "subject": "Changed"}
		}, check: expectField("ghl.calendars.notifications.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"calendarId": f.ids["calendar"], "notificationId": f.ids["notification"]}
		}, "subject", "Changed")},
		"ghl.calendars.notifications.delete": {input: func(f *fixture) map[string]any {
			return map[string]any{"calendarId": f.ids["calendar"], "notificationId": f.ids["notification"]}
		}},
		"ghl.calendars.resources.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"resourceType": "rooms", "id": f.ids["resource"], "name": "Big room"}
		}, check: expectField("ghl.calendars.resources.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"resourceType": "rooms", "id": f.ids["resource"]}
		}, "name", "Big room")},
		"ghl.calendars.resources.get": {input: func(f *fixture) map[string]any {
			return map[string]any{"resourceType": "rooms", "id": f.ids["resource"]}
		}},
		"ghl.calendars.resources.delete": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.calendars.resources.create", f.tok, nil, "id")
			return map[string]any{"resourceType": "rooms", "id": id}
		}},
		"ghl.conversations.emails.get": {input: func(f *fixture) map[string]any {
			st, b := f.do(f.tok, "ghl.conversations.messages.send", map[string]any{"type": "Email", "subType": "x",
				"contactId": f.ids["contact"], "status": "delivered", "subject": "Hi", "html": "<p>Hi</p>"})
			if st != 200 {
				f.t.Fatalf("send email: %d %s", st, b)
			}
			return map[string]any{"id": gjson.GetBytes(b, "emailMessageId").String()}
		}},
		"ghl.conversations.messages.get": {input: func(f *fixture) map[string]any { return map[string]any{"id": f.ids["message"]} }},
		"ghl.conversations.messages.status": {input: func(f *fixture) map[string]any {
			return map[string]any{"messageId": f.ids["message"], "status": "read"}
		}, check: expectField("ghl.conversations.messages.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": f.ids["message"]}
		}, "status", "read")},
		"ghl.conversations.messages.send": {input: func(f *fixture) map[string]any {
			return map[string]any{"type": "SMS", "subType": "x", "contactId": f.ids["contact"], "status": "pending", "message": "Hello there"}
		}, check: expectField("ghl.conversations.messages.list", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"conversationId": idFrom("conversationId")(f, b)}
		}, "messages.messages.0.body", "Hello there")},
		"ghl.conversations.create": {input: func(f *fixture) map[string]any {
			id := f.create("ghl.contacts.create", f.tok, map[string]any{"email": "talker@example.com"}, "contact.id")
			return map[string]any{"locationId": f.loc, "contactId": id}
		}, check: expectField("ghl.conversations.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"conversationId": idFrom("conversation.id")(f, b)}
		}, "inbox", "true")},
		"ghl.locations.snapshots.list": {tok: agencyTok},
		"ghl.locations.company":        {tok: agencyTok},
		"ghl.users.filter_by_email": {tok: agencyTok, input: func(f *fixture) map[string]any {
			st, b := f.do(f.tok, "ghl.users.get", map[string]any{"userId": f.ids["user"]})
			if st != 200 {
				f.t.Fatal(st)
			}
			return map[string]any{"companyId": f.company, "emails": []any{gjson.GetBytes(b, "email").String()}}
		}},
		"ghl.locations.create": {tok: agencyTok, input: func(f *fixture) map[string]any {
			return map[string]any{"name": "Branch", "companyId": f.company}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			st, body := f.do(f.agency, "ghl.locations.get", map[string]any{"locationId": gjson.GetBytes(b, "id").String()})
			if st != 200 || gjson.GetBytes(body, "location.name").String() != "Branch" {
				t.Fatalf("new location: %d %s", st, body)
			}
		}},
		"ghl.opportunities.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"pipelineId": f.ids["pipeline"], "locationId": f.loc, "name": "Big deal", "status": "open", "contactId": f.ids["contact"]}
		}, check: expectField("ghl.opportunities.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": idFrom("opportunity.id")(f, b)}
		}, "opportunity.name", "Big deal")},
		"ghl.opportunities.get": {input: func(f *fixture) map[string]any { return map[string]any{"id": f.ids["opportunity"]} }},
		"ghl.calendars.free_slots": {input: func(f *fixture) map[string]any {
			now := time.Now()
			return map[string]any{"calendarId": f.ids["calendar"], "startDate": fmt.Sprint(now.UnixMilli()),
				"endDate": fmt.Sprint(now.Add(72 * time.Hour).UnixMilli())}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			if !strings.Contains(string(b), `"slots"`) {
				t.Fatalf("free slots: %s", b)
			}
		}},
		"ghl.opportunities.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"id": f.ids["opportunity"], "monetaryValue": 999}
		}, check: expectField("ghl.opportunities.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": f.ids["opportunity"]}
		}, "opportunity.monetaryValue", "999")},
		"ghl.opportunities.status": {input: func(f *fixture) map[string]any {
			return map[string]any{"id": f.ids["opportunity"], "status": "won"}
		}, check: expectField("ghl.opportunities.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": f.ids["opportunity"]}
		}, "opportunity.status", "won")},
		"ghl.opportunities.delete": {input: func(f *fixture) map[string]any {
			f.ids["deadOpp"] = f.create("ghl.opportunities.create", f.tok, map[string]any{"status": "open", "contactId": f.ids["contact"]}, "opportunity.id")
			return map[string]any{"id": f.ids["deadOpp"]}
		}, check: expectGone("ghl.opportunities.get", func(f *fixture) map[string]any {
			return map[string]any{"id": f.ids["deadOpp"]}
		})},
		"ghl.opportunities.upsert": {input: func(f *fixture) map[string]any {
			return map[string]any{"id": f.ids["opportunity"], "pipelineId": f.ids["pipeline"], "locationId": f.loc, "followers": []any{"u1"},
				"isRemoveAllFollowers": false, "followersActionType": "add", "name": "Upserted"}
		}, check: expectField("ghl.opportunities.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": f.ids["opportunity"]}
		}, "opportunity.name", "Upserted")},
		"ghl.opportunities.followers.add": {input: func(f *fixture) map[string]any {
			return map[string]any{"id": f.ids["opportunity"], "followers": []any{"u2"}}
		}, check: expectField("ghl.opportunities.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": f.ids["opportunity"]}
		}, `opportunity.followers.#(=="u2")`, "u2")},
		"ghl.opportunities.followers.remove": {input: func(f *fixture) map[string]any {
			return map[string]any{"id": f.ids["opportunity"], "followers": []any{"u2"}}
		}, check: expectField("ghl.opportunities.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"id": f.ids["opportunity"]}
		}, `opportunity.followers.#(=="u2")`, "")},
		"ghl.users.create": {input: func(f *fixture) map[string]any {
			in := f.defaultInput(f.cat.MustOp("ghl.users.create"))
			in["locationIds"], in["firstName"] = []any{f.loc}, "Linus"
			return in
		}, check: expectField("ghl.users.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"userId": idFrom("id")(f, b)}
		}, "firstName", "Linus")},
		"ghl.users.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"userId": f.ids["user"], "lastName": "Torvalds"}
		}, check: expectField("ghl.users.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"userId": f.ids["user"]}
		}, "lastName", "Torvalds")},
		"ghl.users.delete": {input: func(f *fixture) map[string]any {
			in := f.defaultInput(f.cat.MustOp("ghl.users.create"))
			f.ids["deadUser"] = f.create("ghl.users.create", f.tok, in, "id")
			return map[string]any{"userId": f.ids["deadUser"]}
		}, check: expectGone("ghl.users.get", func(f *fixture) map[string]any {
			return map[string]any{"userId": f.ids["deadUser"]}
		})},
		"ghl.campaigns.add_contact": {check: expectField("ghl.contacts.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"contactId": f.ids["contact"]}
		}, "contact.campaigns.0", "\x00campaign")},

		"referralrock.members.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"programId": f.ids["program"], "firstName": "Rita", "email": "rita@example.com"}
		}, check: expectField("referralrock.members.new", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"count": 1}
		}, "members.0.firstName", "Rita")},
		"referralrock.members.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"query.primaryInfo.memberId": f.ids["member"], "member.lastName": "Updated"}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			if gjson.GetBytes(b, "0.resultInfo.status").String() != "Success" || gjson.GetBytes(b, "0.member.lastName").String() != "Updated" {
				t.Fatalf("member update: %s", b)
			}
		}},
		"referralrock.referrals.get": {input: func(f *fixture) map[string]any { return map[string]any{"referralId": f.ids["referral"]} }},
		"referralrock.referrals.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"referralCode": f.ids["referralCode"], "firstName": "Ned", "email": "ned@example.com"}
		}, check: expectField("referralrock.referrals.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"email": "ned@example.com"}
		}, "firstName", "Ned")},
		"referralrock.referrals.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"query.primaryInfo.referralId": f.ids["referral"], "referral.note": "called"}
		}, check: expectField("referralrock.referrals.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"referralId": f.ids["referral"]}
		}, "note", "called")},
		"referralrock.referrals.update_status": {input: func(f *fixture) map[string]any {
			return map[string]any{"query.primaryInfo.referralId": f.ids["referral"], "referral.status": "approved"}
		}, check: expectField("referralrock.referrals.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"referralId": f.ids["referral"]}
		}, "status", "approved")},
		"referralrock.referrals.add_action": {input: func(f *fixture) map[string]any {
			return map[string]any{"amount": 10, "referralQuery": map[string]any{"primaryInfo": map[string]any{"referralId": f.ids["referral"]}}}
		}},
		"referralrock.rewards.issued": {input: func(f *fixture) map[string]any { return map[string]any{"status": "Issued", "count": 10} }},
		"referralrock.rewards.issue": {input: func(f *fixture) map[string]any { return map[string]any{"rewardId": f.ids["reward"]} },
			check: func(t *testing.T, f *fixture, b []byte) {
				expectField("referralrock.rewards.new", func(f *fixture, b []byte) map[string]any {
					return map[string]any{"count": 100}
				}, `rewards.#(id=="`+f.ids["reward"]+`").status`, "Issued")(t, f, b)
			}},
		"referralrock.rewards.create": {input: func(f *fixture) map[string]any {
			return map[string]any{"memberQuery.primaryInfo.memberId": f.ids["member"], "newReward.payoutId": "p1", "newReward.amount": 25}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			if gjson.GetBytes(b, "0.reward.amount").Int() != 25 {
				t.Fatalf("reward create: %s", b)
			}
		}},
		"referralrock.webhooks.unsubscribe": {input: func(f *fixture) map[string]any {
			id := f.create("referralrock.webhooks.subscribe", f.rr, nil, "web_hook_id")
			return map[string]any{"web_hook_id": id}
		}},
		"referrizer.contacts.upsert": {input: func(f *fixture) map[string]any {
			return map[string]any{"email": "rz-new@example.com", "firstName": "Zed"}
		}, check: expectField("referrizer.contacts.new", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"perPage": 100}
		}, `#(email=="rz-new@example.com").firstName`, "Zed")},
		"referrizer.loyalty_rewards.create": {check: expectField("referrizer.loyalty_rewards.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"loyaltyRewardId": idFrom("id")(f, b)}
		}, "title", "x-title")},
		"referrizer.loyalty_rewards.update": {input: func(f *fixture) map[string]any {
			return map[string]any{"loyaltyRewardId": f.ids["loyalty"], "title": "Free tea"}
		}, check: expectField("referrizer.loyalty_rewards.get", func(f *fixture, b []byte) map[string]any {
			return map[string]any{"loyaltyRewardId": f.ids["loyalty"]}
		}, "title", "Free tea")},
		"referrizer.tasks.update": {input: func(f *fixture) map[string]any {
			id := f.create("referrizer.tasks.create", f.rz, map[string]any{"contactId": f.ids["rzContact"], "title": "Call"}, "id")
			return map[string]any{"taskId": id, "completed": true}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			if !gjson.GetBytes(b, "completed").Bool() || gjson.GetBytes(b, "title").String() != "Call" {
				t.Fatalf("task update: %s", b)
			}
		}},
		"referrizer.contacts.tags.add": {input: func(f *fixture) map[string]any {
			return map[string]any{"contactId": f.ids["rzContact"], "tags": []any{"gold"}}
		}, check: func(t *testing.T, f *fixture, b []byte) {
			if !strings.Contains(gjson.GetBytes(b, "tags").Raw, "gold") {
				t.Fatalf("tags: %s", b)
			}
		}},
	}
}
