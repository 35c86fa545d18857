package sim_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

func TestContactLifecycle(t *testing.T) {
	e := newEnv(t, sim.Config{})
	created := e.call("ghl.contacts.create", map[string]any{"locationId": e.loc, "firstName": "Ada", "lastName": "Lovelace",
		"email": "ada@example.com", "tags": []any{"VIP", "lead"}})
	c := created["contact"].(map[string]any)
	id := c["id"].(string)
	if len(id) != 20 {
		t.Fatalf("id %q is not 20 characters", id)
	}
	if c["dateAdded"] == nil || c["firstNameLowerCase"] != "ada" {
		t.Fatalf("contact fields: %v", c)
	}
	st, b := e.do(e.tok, "ghl.contacts.create", map[string]any{"locationId": e.loc, "email": "ADA@example.com"})
	if st != http.StatusBadRequest {
		t.Fatalf("duplicate create: %d %s", st, b)
	}
	e.call("ghl.contacts.tags.add", map[string]any{"contactId": id, "tags": []any{"referral"}})
	got := e.call("ghl.contacts.get", map[string]any{"contactId": id})["contact"].(map[string]any)
	if tags, _ := json.Marshal(got["tags"]); string(tags) != `["vip","lead","referral"]` {
		t.Fatalf("tags after add: %s", tags)
	}
	e.call("ghl.contacts.tags.remove", map[string]any{"contactId": id, "tags": []any{"lead"}})
	up := e.call("ghl.contacts.update", map[string]any{"contactId": id, "city": "London"})
	if up["contact"].(map[string]any)["city"] != "London" || up["succeded"] != true {
		t.Fatalf("update: %v", up)
	}
	ups := e.call("ghl.contacts.upsert", map[string]any{"locationId": e.loc, "email": "ada@example.com", "phone": "+441234"})
	if ups["new"] != false || ups["contact"].(map[string]any)["id"] != id {
		t.Fatalf("upsert matched no contact: %v", ups)
	}
	task := e.call("ghl.contacts.tasks.create", map[string]any{"contactId": id, "title": "Call", "dueDate": "2030-01-01T10:00:00Z", "completed": false})
	taskID := task["task"].(map[string]any)["id"].(string)
	e.call("ghl.contacts.tasks.complete", map[string]any{"contactId": id, "taskId": taskID, "completed": true})
	tasks := e.call("ghl.contacts.tasks.list", map[string]any{"contactId": id})["tasks"].([]any)
	if len(tasks) != 1 || tasks[0].(map[string]any)["completed"] != true {
		t.Fatalf("tasks after complete: %v", tasks)
	}
	note := e.call("ghl.contacts.notes.create", map[string]any{"contactId": id, "body": "hello"})
	noteID := note["note"].(map[string]any)["id"].(string)
	e.call("ghl.contacts.notes.delete", map[string]any{"contactId": id, "id": noteID})
	if st, _ := e.do(e.tok, "ghl.contacts.notes.get", map[string]any{"contactId": id, "id": noteID}); st != http.StatusNotFound {
		t.Fatalf("deleted note: status %d", st)
	}
	e.call("ghl.contacts.delete", map[string]any{"contactId": id})
	if st, _ := e.do(e.tok, "ghl.contacts.get", map[string]any{"contactId": id}); st != http.StatusNotFound {
		t.Fatalf("deleted contact: status %d", st)
	}
	if n := len(e.srv.Writes("ghl.contacts.tasks.complete")); n != 1 {
		t.Fatalf("writes of tasks.complete: %d", n)
	}
}
