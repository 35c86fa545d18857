package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/engine/webhook"
)

// api calls operation opID of the simulator with the location's token
// (params fill the path, the others go in the query) and returns the
// answer's body.
func (e *instantEnv) api(opID string, params map[string]string, body any) []byte {
	e.t.Helper()
	method, path, ok := e.srv.Route(opID)
	if !ok {
		e.t.Fatalf("no route for %s", opID)
	}
	query := url.Values{}
	for k, v := range params {
		if strings.Contains(path, "{"+k+"}") {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		} else {
			query.Set(k, v)
		}
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, e.simURL+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Version", "2021-07-28")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("%s: %d %s", opID, resp.StatusCode, out.Bytes())
	}
	return out.Bytes()
}

// TestInstantOtherEvents: instant recipes on opportunities and on one
// contact's notes fire from OpportunityCreate and NoteCreate deliveries
// within a second on 15-minute recipes, and the event's fields must match
// the trigger's parameters: a note of another contact fires nothing.
func TestInstantOtherEvents(t *testing.T) {
	overlapInShort(t)
	dir := t.TempDir()
	var contact, other string
	e := newInstantEnvIn(t, dir)
	contact = e.srv.CreateContact(e.loc, map[string]any{"firstName": "Noted"})["id"].(string)
	other = e.srv.CreateContact(e.loc, map[string]any{"firstName": "Other"})["id"].(string)
	recipes := map[string]string{
		"opps.yaml": `name: instant-opps
trigger: {op: ghl.opportunities.search, connection: acme, every: 15m, instant: true}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.contactId }}", tags: [opportunity]}
`,
		"notes.yaml": `name: instant-notes
trigger: {op: ghl.contacts.notes.list, connection: acme, every: 15m, instant: true, params: {contactId: ` + contact + `}}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.contactId }}", tags: [noted]}
`,
	}
	for name, text := range recipes {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The engine reads its recipes at start: the env started on an empty
	// folder, so reload now that the recipes are there.
	if err := e.eng.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	pipeline := "pipelineINSTANT00000"
	opp := gjson.GetBytes(e.api("ghl.opportunities.create", nil, map[string]any{"pipelineId": pipeline, "locationId": e.loc,
		"name": "Big deal", "status": "open", "contactId": contact}), "opportunity.id").String()
	e.waitRuns(opp, 1, time.Second)
	note := gjson.GetBytes(e.api("ghl.contacts.notes.create", map[string]string{"contactId": contact},
		map[string]any{"body": "Called back"}), "note.id").String()
	e.waitRuns(note, 1, time.Second)
	elsewhere := gjson.GetBytes(e.api("ghl.contacts.notes.create", map[string]string{"contactId": other},
		map[string]any{"body": "Not watched"}), "note.id").String()
	e.settle()
	if n := e.runs(elsewhere); n != 0 {
		t.Errorf("a note of another contact fired %d chains", n)
	}
	for _, typ := range []string{"OpportunityCreate", "NoteCreate"} {
		if e.count(typ, webhook.ResultRouted) == 0 {
			t.Errorf("no %s routed", typ)
		}
	}
	if n := e.runs(opp) + e.runs(note); n != 2 {
		t.Errorf("%d chains for one opportunity and one note, want 2", n)
	}
}
