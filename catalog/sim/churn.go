package sim

import (
	"context"
	"fmt"
	"time"
)

// RunChurn makes perSecond changes per second, spread over the locations,
// until ctx is done (see churnOne), so pollers see new and changed items
// arrive in GHL and in the referral apps.
func (s *Server) RunChurn(ctx context.Context, perSecond float64) {
	if perSecond <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		locs := s.Locations()
		if len(locs) == 0 {
			continue
		}
		n++
		s.churnOne(locs[n%len(locs)], n)
	}
}

// churnOne cycles through six changes on loc: a new contact, an update of
// a random contact, a new task on a random contact, a new opportunity, a
// new Referral Rock referral, a new Referrizer contact.
func (s *Server) churnOne(loc string, n int) {
	l := s.loc(loc)
	if l == nil {
		return
	}
	l.mu.RLock()
	var id string
	if col := l.col(colContacts, false); col != nil && col.len() > 0 {
		id = col.order[s.randN(col.len())].id
	}
	l.mu.RUnlock()
	if id == "" || n%6 == 1 {
		s.CreateContact(loc, s.fakeContact(int(s.now().UnixNano()%1e9)+n))
		return
	}
	switch n % 6 {
	case 4:
		l.mu.Lock()
		progs, members := l.col(colRRPrograms, false), l.col(colRRMembers, false)
		if progs != nil && progs.len() > 0 && members != nil && members.len() > 0 {
			// Counted from 1,000 so churned emails differ from the seeded ones.
			s.addReferral(l, progs.order[0], members.order[s.randN(members.len())], 1000+n, s.now())
		}
		l.mu.Unlock()
	case 5:
		l.mu.Lock()
		s.addRZContact(l, 1000+n, s.now())
		l.mu.Unlock()
	case 2:
		s.UpdateContact(loc, id, map[string]any{"city": cities[s.randN(len(cities))],
			"tags": []any{seedTags[s.randN(len(seedTags))]}})
	case 3:
		now := s.now()
		l.mu.Lock()
		at := l.stamp(now)
		task := map[string]any{"id": s.newID(), "contactId": id, "title": "Follow up", "body": "",
			"dueDate": isoTime(at.Add(24 * time.Hour)), "completed": false}
		o := newObject(task["id"].(string), at, task)
		l.col(tasksCol(id), true).put(o)
		l.mu.Unlock()
		s.emitRaw(loc, "TaskCreate", o.raw)
	default:
		now := s.now()
		l.mu.Lock()
		var pipe, stage any
		if p := l.col(colPipelines, false); p != nil && p.len() > 0 {
			pipe = p.order[0].id
			if st, _ := p.order[0].data["stages"].([]any); len(st) > 0 {
				stage = st[0].(map[string]any)["id"]
			}
		}
		g := &gen{app: "ghl", created: "createdAt", updated: "updatedAt"}
		o := s.insert(l, g, colOpps, now, mergeMaps(opportunityDefaults(s, l, now), map[string]any{
			"name": fmt.Sprintf("Deal %d", n), "contactId": id, "pipelineId": pipe, "pipelineStageId": stage,
			"monetaryValue": 50 * (n%20 + 1)}))
		l.mu.Unlock()
		s.emitRaw(loc, "OpportunityCreate", o.raw)
	}
}

var cities = []string{"Springfield", "Riverside", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem"}
