package sim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

func TestValidationErrors(t *testing.T) {
	e := newEnv(t, sim.Config{})
	post := func(path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", e.tok.Authorization())
		req.Header.Set("Version", "2021-07-28")
		req.Header.Set("Content-Type", "application/json")
		st, b := e.send(req)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return st, m
	}
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"unknown property", "/contacts/", `{"locationId":"` + e.loc + `","shoeSize":42}`, 422, "property shoeSize should not exist"},
		{"missing required", "/contacts/search", `{"locationId":"` + e.loc + `"}`, 422, "pageLimit should not be empty"},
		{"page limit too big", "/contacts/search", `{"locationId":"` + e.loc + `","pageLimit":501}`, 422, "pageLimit must not be greater than 500"},
		{"bad JSON", "/contacts/", `{"locationId":`, 400, "Unexpected token in JSON body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, m := post(tc.path, tc.body)
			if st != tc.status || m["statusCode"] != float64(tc.status) {
				t.Fatalf("status %d: %v", st, m)
			}
			msg := m["message"]
			if list, ok := msg.([]any); ok {
				if tc.status != 422 || len(list) == 0 {
					t.Fatalf("message %v", msg)
				}
				msg = list[0]
			} else if tc.status == 422 {
				t.Fatalf("422 message is not an array: %v", m)
			}
			if msg != tc.msg {
				t.Fatalf("message %v, want %q", msg, tc.msg)
			}
		})
	}
	if n := len(e.srv.Writes("ghl.contacts.create")); n != 2 {
		t.Fatalf("writes logged: %d", n)
	}
}

func TestWriteLogHasBodies(t *testing.T) {
	e := newEnv(t, sim.Config{})
	cid := e.srv.CreateContact(e.loc, nil)["id"].(string)
	e.call("ghl.contacts.tasks.create", map[string]any{"contactId": cid, "title": "Call Bob", "dueDate": "2030-01-01T00:00:00Z", "completed": false})
	w := e.srv.Writes("ghl.contacts.tasks.create")
	if len(w) != 1 || w[0].Location != e.loc || w[0].Status != 201 {
		t.Fatalf("writes: %+v", w)
	}
	var body map[string]any
	if err := json.Unmarshal(w[0].Body, &body); err != nil || body["title"] != "Call Bob" {
		t.Fatalf("body %s", w[0].Body)
	}
	if n := e.srv.RequestCount("ghl.contacts.tasks.create", e.loc); n != 1 {
		t.Fatalf("request count %d", n)
	}
}

func TestChurnAddsContacts(t *testing.T) {
	e := newEnv(t, sim.Config{Burst: -1, Daily: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.srv.RunChurn(ctx, 500); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b := e.call("ghl.contacts.list", map[string]any{"locationId": e.loc, "limit": 100})
		if n := len(b["contacts"].([]any)); n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("churn created no contacts")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
