package sim

import (
	"fmt"
	"strings"
	"time"
)

// seedOthers adds n records to each collection other than contacts, tasks
// and notes (the caller holds l's write lock; contacts exist already).
func (s *Server) seedOthers(l *location, n int, start time.Time) {
	ghl := &gen{app: "ghl"}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }
	contacts := l.col(colContacts, true).order
	contactAt := func(i int) *object {
		if len(contacts) == 0 {
			return nil
		}
		return contacts[i%len(contacts)]
	}
	company := s.ensureLocationLocked(l.company)

	pipeline := s.insert(l, ghl, colPipelines, at(0), map[string]any{"name": "Sales", "showInFunnel": true,
		"showInPieChart": true, "colorRenderMode": "dot", "stages": []any{
			map[string]any{"id": s.newID(), "name": "New", "position": 0},
			map[string]any{"id": s.newID(), "name": "Qualified", "position": 1},
			map[string]any{"id": s.newID(), "name": "Won", "position": 2}}})
	stages := pipeline.data["stages"].([]any)
	group := s.insert(l, ghl, colGroups, at(0), map[string]any{"name": "Sales team", "description": "Sales calls",
		"slug": "sales-" + strings.ToLower(l.id[:6]), "isActive": true})
	cal := s.insert(l, ghl, colCalendars, at(0), mergeMaps(calendarDefaults(s, l, at(0)), map[string]any{
		"name": "Discovery call", "groupId": group.id, "slug": "discovery-" + strings.ToLower(l.id[:6])}))
	site := s.insert(l, &gen{app: "ghl", idField: "_id"}, colBlogSites, at(0), map[string]any{"name": "Company blog"})
	for i := 0; i < n; i++ {
		t := at(i)
		ct := contactAt(i)
		cid := ""
		cname := ""
		if ct != nil {
			cid, cname = ct.id, fmtAny(ct.data["name"])
		}
		ev := s.insert(l, &gen{app: "ghl", created: "dateAdded", updated: "dateUpdated"}, colEvents, t,
			mergeMaps(eventDefaults(s, l, t), map[string]any{"calendarId": cal.id, "contactId": cid, "groupId": group.id,
				"title": "Call with " + cname, "startTime": offsetTime(t.Add(time.Duration(24+i) * time.Hour).Truncate(time.Hour)),
				"endTime": offsetTime(t.Add(time.Duration(24+i) * time.Hour).Truncate(time.Hour).Add(30 * time.Minute))}))
		s.insert(l, &gen{app: "ghl", created: "dateAdded"}, "calendars/appointments/"+ev.id+"/notes", t,
			map[string]any{"body": "Prepare the proposal", "userId": "", "contactId": cid,
				"createdBy": map[string]any{"id": "", "name": ""}})
		s.insert(l, &gen{app: "ghl", created: "dateAdded", updated: "dateUpdated"}, colBlocked, t,
			mergeMaps(eventDefaults(s, l, t), map[string]any{"calendarId": cal.id, "title": "Lunch",
				"startTime": offsetTime(t.Add(48 * time.Hour)), "endTime": offsetTime(t.Add(49 * time.Hour)),
				"appointmentStatus": "", "status": ""}))
		s.insert(l, &gen{app: "ghl", idField: "_id"}, "calendars/"+cal.id+"/notifications", t, map[string]any{
			"receiverType": "contact", "channel": "email", "notificationType": "booked", "isActive": true,
			"deleted": false, "subject": "Your booking", "body": "See you soon", "additionalEmailIds": []any{},
			"selectedUsers": []any{}, "afterTime": []any{}, "beforeTime": []any{}})
		for _, rt := range []string{"equipments", "rooms"} {
			s.insert(l, ghl, "calendars/resources/"+rt, t, map[string]any{"name": fmt.Sprintf("%s %d", rt, i+1),
				"resourceType": rt, "isActive": true, "description": "", "quantity": 1, "outOfService": 0,
				"capacity": 4, "calendarIds": []any{cal.id}})
		}
		biz := s.insert(l, &gen{app: "ghl", created: "createdAt", updated: "updatedAt"}, colBusinesses, t,
			map[string]any{"name": fmt.Sprintf("Business %d", i+1), "phone": "+15550100100", "email": fmt.Sprintf("biz%d@example.com", i+1),
				"website": "https://biz.example", "address": "2 Market St", "city": "Springfield", "state": "IL",
				"postalCode": "62701", "country": "US", "description": ""})
		if ct != nil && i%2 == 0 {
			ct.data["businessId"] = biz.id
			ct.encode()
		}
		opp := mergeMaps(opportunityDefaults(s, l, t), map[string]any{"name": fmt.Sprintf("Deal %d", i+1),
			"pipelineId": pipeline.id, "pipelineStageId": stages[i%len(stages)].(map[string]any)["id"],
			"monetaryValue": 100 * (i + 1), "contactId": cid})
		if ct != nil {
			opp["contact"] = contactSummary(ct)
		}
		s.insert(l, &gen{app: "ghl", created: "createdAt", updated: "updatedAt"}, colOpps, t, opp)
		if ct != nil {
			conv := conversationOf(l, ct.id)
			if conv == nil {
				conv = s.newConversation(l, ct, t)
			}
			typ := "TYPE_SMS"
			if i%2 == 1 {
				typ = "TYPE_EMAIL"
			}
			m := map[string]any{"type": 1, "messageType": typ, "locationId": l.id, "contactId": ct.id,
				"conversationId": conv.id, "dateAdded": isoTime(t), "body": "Hi " + cname, "direction": "inbound",
				"status": "delivered", "contentType": "text/plain", "attachments": []any{}, "source": "app"}
			if typ == "TYPE_EMAIL" {
				m["type"], m["subject"], m["from"], m["to"] = 3, "Hello", ct.data["email"], []any{"owner@example.com"}
			}
			s.insert(l, ghl, colMessages, t, m)
			conv.data["lastMessageBody"], conv.data["lastMessageType"] = m["body"], typ
			conv.data["lastMessageDate"], conv.data["unreadCount"] = isoTime(t), 1
			conv.encode()
		}
		s.insert(l, &gen{app: "ghl", created: "createdAt", updated: "updatedAt"}, colWorkflows, t,
			map[string]any{"name": fmt.Sprintf("Workflow %d", i+1), "status": []string{"published", "draft"}[i%2], "version": 1})
		s.insert(l, ghl, colCampaigns, t, map[string]any{"name": fmt.Sprintf("Campaign %d", i+1),
			"status": []string{"published", "draft"}[i%2]})
		s.insert(l, ghl, colCustomFields, t, map[string]any{"name": fmt.Sprintf("Field %d", i+1),
			"fieldKey": fmt.Sprintf("contact.field_%d", i+1), "placeholder": "", "dataType": "TEXT", "position": i,
			"model": []string{"contact", "opportunity"}[i%2]})
		key := fmt.Sprintf("contact_business_%d", i+1)
		assoc := s.insert(l, ghl, colAssociations, t, map[string]any{"key": key, "firstObjectLabel": "Contact",
			"firstObjectKey": "contact", "secondObjectLabel": "Business", "secondObjectKey": "business",
			"associationType": "USER_DEFINED"})
		if ct != nil {
			s.insert(l, ghl, colRelations, t, map[string]any{"associationId": assoc.id, "firstRecordId": ct.id,
				"secondRecordId": biz.id, "key": key, "firstObjectKey": "contact", "secondObjectKey": "business"})
		}
		s.insert(l, &gen{app: "ghl", idField: "_id", updated: "updatedAt"}, colBlogAuthors, t,
			map[string]any{"name": fmt.Sprintf("Author %d", i+1), "canonicalLink": ""})
		s.insert(l, &gen{app: "ghl", idField: "_id", updated: "updatedAt"}, colBlogCats, t,
			map[string]any{"label": fmt.Sprintf("Category %d", i+1), "urlSlug": fmt.Sprintf("category-%d", i+1), "canonicalLink": ""})
		s.insert(l, &gen{app: "ghl", idField: "_id", updated: "updatedAt"}, colBlogPosts, t,
			map[string]any{"title": fmt.Sprintf("Post %d", i+1), "blogId": site.id, "status": "PUBLISHED",
				"urlSlug": fmt.Sprintf("post-%d-%s", i+1, strings.ToLower(l.id[:4])), "description": "", "imageUrl": "",
				"imageAltText": "", "author": "", "categories": []any{}, "tags": []any{}, "archived": false,
				"canonicalLink": "", "publishedAt": isoTime(t)})
		company.mu.Lock()
		first, last := firstNames[i%len(firstNames)], lastNames[(i+3)%len(lastNames)]
		s.insert(company, &gen{app: "ghl"}, colUsers, t, mergeMaps(userDefaults(s, company, t), map[string]any{
			"firstName": first, "lastName": last, "name": first + " " + last,
			"email": fmt.Sprintf("%s.%s@%s.example", strings.ToLower(first), strings.ToLower(l.id[:6]), "team"),
			"roles": map[string]any{"type": "account", "role": "user", "locationIds": []any{l.id}}}))
		if i == 0 {
			s.insert(company, &gen{app: "ghl"}, colSnapshots, t, map[string]any{"name": "Starter snapshot " + l.id[:4], "type": "own"})
		}
		company.mu.Unlock()
	}
	s.seedReferral(l, n, start)
}

// ensureLocationLocked is ensureLocation for a company store; safe while a
// location lock is held (it takes only the server lock).
func (s *Server) ensureLocationLocked(id string) *location { return s.ensureLocation(id, id) }

// seedReferral adds Referral Rock programs, members, referrals and rewards
// and Referrizer contacts, loyalty rewards and redemptions.
func (s *Server) seedReferral(l *location, n int, start time.Time) {
	rr := &gen{app: "referralrock", ids: "guid"}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }
	prog := s.insert(l, rr, colRRPrograms, at(0), map[string]any{"name": "Friends and family", "title": "Refer a friend",
		"type": "Referral", "isActive": true, "memberOffer": "$50", "referralOffer": "10% off",
		"directUrl": "https://referral.example/p", "widgetUrl": ""})
	reward := s.insert(l, &gen{app: "referrizer", ids: "hex"}, colRZRewards, at(0), map[string]any{"title": "Free coffee",
		"points": 10, "quantity": map[string]any{"total": 100, "perContact": 1}, "available": 100, "type": "ITEM",
		"value": 5, "expires": false, "startDate": isoTime(at(0)), "itemId": "", "itemName": "Coffee"})
	for i := 0; i < n; i++ {
		t := at(i)
		first, last := firstNames[(i+5)%len(firstNames)], lastNames[(i+7)%len(lastNames)]
		ts := stampValue("referralrock", t)
		m := s.insert(l, rr, colRRMembers, t, map[string]any{"firstName": first, "lastName": last,
			"fullName": first + " " + last, "email": fmt.Sprintf("member%d.%s@example.com", i+1, strings.ToLower(l.id[:4])),
			"phone": "", "programId": prog.id, "programName": prog.data["name"], "disabledFlag": false,
			"referralCode": fmt.Sprintf("%s%d", strings.ToLower(first), 100+i), "externalIdentifier": "", "createDt": ts,
			"status": "Active", "views": 0, "referrals": 1, "rewardIssuedTotal": 0})
		rf := s.addReferral(l, prog, m, i, t)
		rw := map[string]any{"memberId": m.id, "referralId": rf.id, "programId": prog.id, "type": "Referral",
			"recipientName": m.data["fullName"], "recipientEmailAddress": m.data["email"], "amount": 50,
			"status": []string{"Pending", "Issued"}[i%2], "payoutId": "payout1", "description": "Referral bonus",
			"createDate": ts, "updateDate": ts}
		if i%2 == 1 {
			rw["issueDate"] = ts
		}
		s.insert(l, rr, colRRRewards, t, rw)
		ct := s.addRZContact(l, i, t)
		s.insert(l, &gen{app: "referrizer", ids: "hex"}, colRZRedeems, t, map[string]any{"loyaltyRewardId": reward.id,
			"contactId": ct.id, "points": 10, "date": isoTime(t), "employeeId": "", "note": ""})
	}
}

// addReferral adds the i-th Referral Rock referral of loc, by member m of
// program prog, created at t. The caller holds the location's lock.
func (s *Server) addReferral(l *location, prog, m *object, i int, t time.Time) *object {
	first, last := firstNames[(i+5)%len(firstNames)], lastNames[(i+7)%len(lastNames)]
	ts := stampValue("referralrock", t)
	return s.insert(l, &gen{app: "referralrock", ids: "guid"}, colRRReferrals, t, map[string]any{"firstName": last, "lastName": first,
		"fullName": last + " " + first, "displayName": last + " " + first,
		"email": fmt.Sprintf("referral%d.%s@example.com", i+1, strings.ToLower(l.id[:4])), "phoneNumber": "",
		"status": []string{"pending", "qualified", "approved", "denied"}[i%4], "amount": 0, "companyName": "",
		"programId": prog.id, "programName": prog.data["name"], "referringMemberId": m.id,
		"referringMemberName": m.data["fullName"], "memberEmail": m.data["email"], "externalIdentifier": "",
		"createDate": ts, "updateDate": ts, "note": "", "publicNote": ""})
}

// addRZContact adds the i-th Referrizer contact of loc, created at t. The
// caller holds the location's lock.
func (s *Server) addRZContact(l *location, i int, t time.Time) *object {
	first, last := firstNames[(i+5)%len(firstNames)], lastNames[(i+7)%len(lastNames)]
	return s.insert(l, &gen{app: "referrizer", ids: "hex", created: "createdAt", updated: "updatedAt"}, colRZContacts, t,
		map[string]any{"firstName": first, "lastName": last,
			"email": fmt.Sprintf("rz%d.%s@example.com", i+1, strings.ToLower(l.id[:4])), "phone": fmt.Sprintf("+1555020%04d", i%10000),
			"points": 50, "visits": 1, "tags": []any{"loyal"}})
}
