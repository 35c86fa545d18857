package sim

import (
	"fmt"
	"strings"
	"time"
)

var (
	firstNames = []string{"Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Elijah", "Mia", "Lucas",
		"Amelia", "Levi", "Harper", "Ezra", "Aria", "Kai", "Chloe", "Leo", "Nora", "Milo"}
	lastNames = []string{"Garcia", "Smith", "Nguyen", "Johnson", "Patel", "Brown", "Kim", "Lopez", "Miller", "Davis",
		"Wilson", "Martinez", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark"}
	seedTags = []string{"lead", "customer", "vip", "referral", "newsletter", "webinar"}
)

// fakeContact returns plausible contact fields, numbered n.
func (s *Server) fakeContact(n int) map[string]any {
	first := firstNames[s.randN(len(firstNames))]
	last := lastNames[s.randN(len(lastNames))]
	return map[string]any{
		"firstName": first, "lastName": last,
		"email":  fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), n),
		"phone":  fmt.Sprintf("+1555%07d", n%10000000),
		"source": "sim", "tags": []any{seedTags[s.randN(len(seedTags))]},
		"city": "Springfield", "state": "IL", "postalCode": "62701",
	}
}

// Seed adds n objects of each kind to every location, dated over the past n
// minutes: contacts with a task and a note each, and the records of the
// other collections (seedOthers). Locations are created when there are
// none.
func (s *Server) Seed(n int) {
	locs := s.Locations()
	for _, id := range locs {
		s.seedLocation(id, n)
	}
}

func (s *Server) seedLocation(locID string, n int) {
	l := s.ensureLocation(locID, "")
	start := s.now().Add(-time.Duration(n) * time.Minute)
	l.mu.Lock()
	defer l.mu.Unlock()
	contacts := l.col(colContacts, true)
	base := contacts.len()
	for i := 0; i < n; i++ {
		at := l.stamp(start.Add(time.Duration(i) * time.Minute))
		d := s.newContact(locID, s.fakeContact(base+i+1), at)
		o := newObject(d["id"].(string), at, d)
		contacts.put(o)
		task := map[string]any{"id": s.newID(), "contactId": o.id, "title": "Follow up with " + d["name"].(string),
			"body": "Call back", "dueDate": isoTime(at.Add(48 * time.Hour)), "completed": false}
		l.col(tasksCol(o.id), true).put(newObject(task["id"].(string), at, task))
		note := map[string]any{"id": s.newID(), "contactId": o.id, "body": "Met at the open house",
			"userId": "", "dateAdded": isoTime(at)}
		l.col(notesCol(o.id), true).put(newObject(note["id"].(string), at, note))
	}
	s.seedOthers(l, n, start)
}
