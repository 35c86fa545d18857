package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

func init() {
	for id, h := range map[string]handler{
		"ghl.appointments.events.delete":     hDeleteEvent,
		"ghl.calendars.notifications.create": hCreateNotifications,
		"ghl.calendars.free_slots":           hFreeSlots,
		"ghl.calendars.groups.validate_slug": hValidateSlug,
		"ghl.blogs.slug_exists":              hSlugExists,
		"ghl.opportunities.search":           hSearchOpportunities,
		"ghl.opportunities.upsert":           hUpsertOpportunity,
		"ghl.opportunities.followers.add":    hOppFollowers(true),
		"ghl.opportunities.followers.remove": hOppFollowers(false),
		"ghl.conversations.search":           hSearchConversations,
		"ghl.conversations.create":           hCreateConversation,
		"ghl.conversations.messages.send":    hSendMessage,
		"ghl.conversations.messages.list":    hListMessages,
		"ghl.locations.get":                  hGetLocation,
		"ghl.locations.create":               hCreateLocation,
		"ghl.locations.search":               hSearchLocations,
		"ghl.locations.company":              hGetCompany,
		"ghl.users.filter_by_email":          hUsersByEmail,
	} {
		opHandlers[id] = h
	}
}

// hDeleteEvent is DELETE /calendars/events/{eventId}: an appointment or a
// blocked slot.
func hDeleteEvent(s *Server, c *call) (int, any) {
	id := c.param("eventId")
	l := c.loc
	l.mu.Lock()
	var o *object
	for _, name := range []string{colEvents, colBlocked} {
		if col := l.col(name, false); col != nil {
			if o = col.remove(id); o != nil {
				break
			}
		}
	}
	l.mu.Unlock()
	if o == nil {
		return 0, notFoundErr("Event")
	}
	s.emitRaw(l.id, "AppointmentDelete", o.raw)
	return http.StatusCreated, map[string]any{"succeeded": true}
}

// hCreateNotifications takes an array of notifications and answers the
// created ones as an array.
func hCreateNotifications(s *Server, c *call) (int, any) {
	var list []map[string]any
	if err := json.Unmarshal(c.raw, &list); err != nil {
		if c.body == nil {
			return 0, unprocessable("body must be an array of notifications")
		}
		list = []map[string]any{c.body}
	}
	g := &gen{idField: "_id", app: "ghl"}
	col := "calendars/" + c.param("calendarId") + "/notifications"
	l := c.loc
	l.mu.Lock()
	defer l.mu.Unlock()
	if cc := l.col(colCalendars, false); cc == nil || cc.get(c.param("calendarId")) == nil {
		return 0, notFoundErr("Calendar")
	}
	out := make([]*object, 0, len(list))
	for _, n := range list {
		n["deleted"] = false
		if n["isActive"] == nil {
			n["isActive"] = true
		}
		out = append(out, s.insert(l, g, col, c.now, n))
	}
	return http.StatusOK, rawArray(out)
}

// hFreeSlots answers the calendar's free slots: every half hour from 9:00 to
// 17:00 on each day of the window, minus booked appointments.
func hFreeSlots(s *Server, c *call) (int, any) {
	from, ok1 := timeInput(c.query("startDate"))
	to, ok2 := timeInput(c.query("endDate"))
	if !ok1 || !ok2 || to.Before(from) {
		return 0, unprocessable("startDate and endDate must be epoch milliseconds, startDate first")
	}
	if to.Sub(from) > 31*24*time.Hour {
		return 0, unprocessable("the range must not be longer than 31 days")
	}
	tz := time.UTC
	if name := c.query("timezone"); name != "" {
		if z, err := time.LoadLocation(name); err == nil {
			tz = z
		}
	}
	cid := c.param("calendarId")
	l := c.loc
	l.mu.RLock()
	defer l.mu.RUnlock()
	if cc := l.col(colCalendars, false); cc == nil || cc.get(cid) == nil {
		return 0, notFoundErr("Calendar")
	}
	booked := map[int64]bool{}
	if ev := l.col(colEvents, false); ev != nil {
		for _, o := range ev.order {
			if o.data["calendarId"] == cid {
				if t, ok := timeInput(fmtAny(o.data["startTime"])); ok {
					booked[t.Unix()] = true
				}
			}
		}
	}
	out := map[string]any{}
	for d := from.In(tz); !d.After(to); d = d.AddDate(0, 0, 1) {
		day := time.Date(d.Year(), d.Month(), d.Day(), 9, 0, 0, 0, tz)
		var slots []string
		for t := day; t.Hour() < 17; t = t.Add(30 * time.Minute) {
			if !booked[t.Unix()] {
				slots = append(slots, offsetTime(t))
			}
		}
		out[day.Format("2006-01-02")] = map[string]any{"slots": slots}
	}
	out["traceId"] = traceID()
	return http.StatusOK, out
}

func fmtAny(v any) string {
	s, _ := v.(string)
	return s
}

func hValidateSlug(s *Server, c *call) (int, any) {
	slug := c.bodyStr("slug")
	l := c.loc
	l.mu.RLock()
	defer l.mu.RUnlock()
	if col := l.col(colGroups, false); col != nil {
		for _, o := range col.order {
			if o.data["slug"] == slug {
				return http.StatusOK, map[string]any{"available": false}
			}
		}
	}
	return http.StatusOK, map[string]any{"available": true}
}

func hSlugExists(s *Server, c *call) (int, any) {
	slug, post := c.query("urlSlug"), c.query("postId")
	l := c.loc
	l.mu.RLock()
	defer l.mu.RUnlock()
	if col := l.col(colBlogPosts, false); col != nil {
		for _, o := range col.order {
			if o.data["urlSlug"] == slug && o.id != post {
				return http.StatusOK, map[string]any{"exists": true}
			}
		}
	}
	return http.StatusOK, map[string]any{"exists": false}
}

// cursorPage walks col in creation order after (startAfter ms, startAfterId)
// and returns up to limit matching records.
func cursorPage(col *collection, sa int64, sid string, limit int, keep func(*object) bool) (items []*object, total int) {
	if col == nil {
		return nil, 0
	}
	start := 0
	if sa >= 0 || sid != "" {
		if sa < 0 {
			if o := col.get(sid); o != nil {
				sa = o.created
			}
		}
		start = sort.Search(len(col.order), func(i int) bool {
			o := col.order[i]
			return o.created > sa || (o.created == sa && sid != "" && o.id > sid)
		})
	}
	for i, o := range col.order {
		if !keep(o) {
			continue
		}
		total++
		if i >= start && len(items) < limit {
			items = append(items, o)
		}
	}
	return items, total
}

// hSearchOpportunities is GET /opportunities/search: filters, then the
// startAfter/startAfterId cursor with meta (limit at most 100).
func hSearchOpportunities(s *Server, c *call) (int, any) {
	limit := intArg(c.query("limit"), 20)
	if limit < 1 || limit > 100 {
		return 0, unprocessable("limit must not be greater than 100")
	}
	var sa int64 = -1
	if v := c.query("startAfter"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, unprocessable("startAfter must be a number")
		}
		sa = n
	}
	filters := map[string]string{"pipeline_id": "pipelineId", "pipeline_stage_id": "pipelineStageId",
		"contact_id": "contactId", "assigned_to": "assignedTo", "id": "id"}
	status := c.query("status")
	q := strings.ToLower(c.query("q"))
	keep := func(o *object) bool {
		for p, f := range filters {
			if v := c.query(p); v != "" && fmtAny(o.data[f]) != v {
				return false
			}
		}
		if status != "" && status != "all" && o.data["status"] != status {
			return false
		}
		return q == "" || strings.Contains(lower(o.data["name"]), q)
	}
	l := c.loc
	l.mu.RLock()
	items, total := cursorPage(l.col(colOpps, false), sa, c.query("startAfterId"), limit, keep)
	raw := rawArray(items)
	l.mu.RUnlock()
	meta := map[string]any{"total": total}
	if n := len(items); n > 0 {
		last := items[n-1]
		meta["startAfterId"], meta["startAfter"] = last.id, last.created
		if n == limit {
			v := url.Values{"location_id": {l.id}, "limit": {strconv.Itoa(limit)},
				"startAfter": {strconv.FormatInt(last.created, 10)}, "startAfterId": {last.id}}
			meta["nextPageUrl"] = "http://" + c.r.Host + "/opportunities/search?" + v.Encode()
		}
	}
	return http.StatusOK, listBody("opportunities", raw, map[string]any{"meta": meta, "aggregations": map[string]any{},
		"traceId": traceID()})
}

// hUpsertOpportunity updates the opportunity named by id, else creates one.
func hUpsertOpportunity(s *Server, c *call) (int, any) {
	g := gens["ghl.opportunities.create"]
	l := c.loc
	l.mu.Lock()
	col := l.col(colOpps, true)
	fields := map[string]any{}
	for k, v := range c.body {
		switch k {
		case "isRemoveAllFollowers", "followersActionType", "id":
		default:
			fields[k] = v
		}
	}
	o := col.get(c.bodyStr("id"))
	isNew := o == nil
	if isNew {
		if e := linkContact(s, c, fields); e != nil {
			l.mu.Unlock()
			return 0, e
		}
		o = s.insert(l, g, colOpps, c.now, mergeMaps(opportunityDefaults(s, l, c.now), fields))
	} else {
		for k, v := range fields {
			if k == "followers" {
				continue
			}
			o.data[k] = v
		}
		if f, ok := c.body["followers"].([]any); ok {
			cur, _ := o.data["followers"].([]any)
			switch {
			case c.body["isRemoveAllFollowers"] == true:
				cur = []any{}
			case c.bodyStr("followersActionType") == "remove":
				cur, _ = editList(cur, f, false)
			default:
				cur, _ = editList(cur, f, true)
			}
			o.data["followers"] = cur
		}
		o.data["updatedAt"] = isoTime(c.now)
		o.encode()
	}
	raw := o.raw
	l.mu.Unlock()
	if isNew {
		s.emitRaw(l.id, "OpportunityCreate", raw)
	} else {
		s.emitRaw(l.id, "OpportunityUpdate", raw)
	}
	return http.StatusOK, withField(wrapOne("opportunity", raw), "new", isNew)
}

func mergeMaps(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func hOppFollowers(add bool) handler {
	return func(s *Server, c *call) (int, any) {
		list, _ := c.body["followers"].([]any)
		l := c.loc
		l.mu.Lock()
		defer l.mu.Unlock()
		col := l.col(colOpps, true)
		o := col.get(c.param("id"))
		if o == nil {
			return 0, notFoundErr("Opportunity")
		}
		cur, _ := o.data["followers"].([]any)
		if !add && c.query("isRemoveAllFollowers") == "true" {
			list = cur
		}
		cur, changed := editList(cur, list, add)
		o.data["followers"] = cur
		o.encode()
		if add {
			return http.StatusCreated, map[string]any{"followers": cur, "followersAdded": changed}
		}
		return http.StatusOK, map[string]any{"followers": cur, "followersRemoved": changed}
	}
}

// conversationSort is a conversation's sort value: its last message time
// in epoch ms.
func conversationSort(o *object) float64 {
	if t, ok := timeInput(fmtAny(o.data["lastMessageDate"])); ok {
		return float64(t.UnixMilli())
	}
	return float64(o.created)
}

// hSearchConversations is GET /conversations/search: newest last message
// first; each item carries sort [lastMessageDate ms] and startAfterDate
// continues after it.
func hSearchConversations(s *Server, c *call) (int, any) {
	limit := intArg(c.query("limit"), 20)
	if limit < 1 || limit > 100 {
		return 0, unprocessable("limit must not be greater than 100")
	}
	after := -1.0
	if v := c.query("startAfterDate"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, unprocessable("startAfterDate must be a number")
		}
		after = f
	}
	asc := c.query("sort") == "asc"
	l := c.loc
	l.mu.RLock()
	var hits []*object
	if col := l.col(colConversations, false); col != nil {
		for _, o := range col.order {
			if v := c.query("contactId"); v != "" && o.data["contactId"] != v {
				continue
			}
			if v := c.query("assignedTo"); v != "" && o.data["assignedTo"] != v {
				continue
			}
			if v := c.query("id"); v != "" && o.id != v {
				continue
			}
			if q := strings.ToLower(c.query("query")); q != "" && !strings.Contains(lower(o.data["fullName"]), q) &&
				!strings.Contains(lower(o.data["email"]), q) && !strings.Contains(lower(o.data["phone"]), q) {
				continue
			}
			if st := c.query("status"); st == "unread" && intArg(o.data["unreadCount"], 0) == 0 {
				continue
			}
			hits = append(hits, o)
		}
	}
	hits = sortedCopy(hits, func(a, b *object) bool {
		sa, sb := conversationSort(a), conversationSort(b)
		if sa != sb {
			return (sa < sb) == asc
		}
		return (a.id < b.id) == asc
	})
	total := len(hits)
	var page []byte
	page = append(page, '[')
	n := 0
	for _, o := range hits {
		v := conversationSort(o)
		if after >= 0 && ((asc && v <= after) || (!asc && v >= after)) {
			continue
		}
		if n == limit {
			break
		}
		if n > 0 {
			page = append(page, ',')
		}
		page = append(page, withField(o.raw, "sort", []any{v})...)
		n++
	}
	page = append(page, ']')
	l.mu.RUnlock()
	return http.StatusOK, listBody("conversations", page, map[string]any{"total": total, "traceId": traceID()})
}

// newConversation stores a conversation for a contact (the caller holds
// the write lock).
func (s *Server) newConversation(l *location, contact *object, now time.Time) *object {
	g := &gen{app: "ghl"}
	return s.insert(l, g, colConversations, now, map[string]any{
		"contactId": contact.id, "locationId": l.id, "deleted": false, "inbox": true, "type": 1, "unreadCount": 0,
		"assignedTo": "", "starred": false, "fullName": contact.data["name"], "contactName": contact.data["name"],
		"email": contact.data["email"], "phone": contact.data["phone"], "lastMessageBody": "", "lastMessageType": "",
		"dateAdded": isoTime(now), "dateUpdated": isoTime(now), "lastMessageDate": isoTime(now),
	})
}

func conversationOf(l *location, contactID string) *object {
	if col := l.col(colConversations, false); col != nil {
		for _, o := range col.order {
			if o.data["contactId"] == contactID {
				return o
			}
		}
	}
	return nil
}

func hCreateConversation(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.Lock()
	defer l.mu.Unlock()
	cc := l.col(colContacts, false)
	var ct *object
	if cc != nil {
		ct = cc.get(c.bodyStr("contactId"))
	}
	if ct == nil {
		return 0, contactNotFound()
	}
	if conversationOf(l, ct.id) != nil {
		return 0, errf(http.StatusBadRequest, "Conversation already exists")
	}
	o := s.newConversation(l, ct, c.now)
	return http.StatusCreated, withField(wrapOne("conversation", o.raw), "success", true)
}

// messageTypes maps the send types to a message's type number and name.
var messageTypes = map[string]struct {
	n    int
	name string
}{
	"SMS": {1, "TYPE_SMS"}, "Email": {3, "TYPE_EMAIL"}, "WhatsApp": {19, "TYPE_WHATSAPP"}, "IG": {18, "TYPE_INSTAGRAM"},
	"FB": {11, "TYPE_FACEBOOK"}, "Custom": {20, "TYPE_CUSTOM_SMS"}, "Live_Chat": {29, "TYPE_LIVE_CHAT"},
	"InternalComment": {31, "TYPE_INTERNAL_COMMENT"},
}

// hSendMessage is POST /conversations/messages: the message joins the
// contact's conversation (created when missing).
func hSendMessage(s *Server, c *call) (int, any) {
	typ, ok := messageTypes[c.bodyStr("type")]
	if !ok {
		return 0, unprocessable("type must be one of the following values: SMS, Email, WhatsApp, IG, FB, Custom, Live_Chat, InternalComment")
	}
	l := c.loc
	l.mu.Lock()
	cc := l.col(colContacts, false)
	var ct *object
	if cc != nil {
		ct = cc.get(c.bodyStr("contactId"))
	}
	if ct == nil {
		l.mu.Unlock()
		return 0, contactNotFound()
	}
	conv := conversationOf(l, ct.id)
	if conv == nil {
		conv = s.newConversation(l, ct, c.now)
	}
	body := c.bodyStr("message")
	if body == "" {
		body = c.bodyStr("html")
	}
	d := map[string]any{"type": typ.n, "messageType": typ.name, "locationId": l.id, "contactId": ct.id,
		"conversationId": conv.id, "dateAdded": isoTime(c.now), "body": body, "direction": "outbound",
		"status": "pending", "contentType": "text/plain", "attachments": []any{}, "source": "api"}
	if typ.name == "TYPE_EMAIL" {
		d["subject"] = c.bodyStr("subject")
		d["from"] = c.bodyStr("emailFrom")
		d["to"] = []any{ct.data["email"]}
		d["threadId"] = conv.id
	}
	if st := c.bodyStr("status"); st != "" {
		d["status"] = st
	}
	msg := s.insert(l, &gen{app: "ghl"}, colMessages, c.now, d)
	conv.data["lastMessageBody"] = body
	conv.data["lastMessageType"] = typ.name
	conv.data["lastMessageDate"] = isoTime(c.now)
	conv.data["dateUpdated"] = isoTime(c.now)
	conv.encode()
	l.mu.Unlock()
	s.emitRaw(l.id, "OutboundMessage", msg.raw)
	out := map[string]any{"conversationId": conv.id, "messageId": msg.id, "msg": "Message queued successfully.",
		"traceId": traceID()}
	if typ.name == "TYPE_EMAIL" {
		out["emailMessageId"] = msg.id
	}
	return http.StatusOK, out
}

// hListMessages is GET /conversations/{conversationId}/messages in the live
// nested shape {messages: {lastMessageId, nextPage, messages}}, newest
// first; lastMessageId continues after that message.
func hListMessages(s *Server, c *call) (int, any) {
	limit := intArg(c.query("limit"), 20)
	if limit < 1 || limit > 100 {
		return 0, unprocessable("limit must not be greater than 100")
	}
	cid := c.param("conversationId")
	l := c.loc
	l.mu.RLock()
	if col := l.col(colConversations, false); col == nil || col.get(cid) == nil {
		l.mu.RUnlock()
		return 0, notFoundErr("Conversation")
	}
	var msgs []*object
	if col := l.col(colMessages, false); col != nil {
		for i := len(col.order) - 1; i >= 0; i-- {
			o := col.order[i]
			if o.data["conversationId"] == cid {
				if t := c.query("type"); t != "" && !strings.Contains(t, fmtAny(o.data["messageType"])) {
					continue
				}
				msgs = append(msgs, o)
			}
		}
	}
	start := 0
	if after := c.query("lastMessageId"); after != "" {
		for i, o := range msgs {
			if o.id == after {
				start = i + 1
				break
			}
		}
	}
	end := min(start+limit, len(msgs))
	var page []*object
	if start < len(msgs) {
		page = msgs[start:end]
	}
	raw := rawArray(page)
	l.mu.RUnlock()
	inner := map[string]any{"nextPage": end < len(msgs), "lastMessageId": nil}
	if len(page) > 0 {
		inner["lastMessageId"] = page[len(page)-1].id
	}
	return http.StatusOK, listBody("messages.messages", raw, map[string]any{"messages": inner, "traceId": traceID()})
}

// locationRecord returns a location's record (a copy).
func locationRecord(l *location) map[string]any {
	out := map[string]any{}
	for k, v := range l.info {
		out[k] = v
	}
	return out
}

func hGetLocation(s *Server, c *call) (int, any) {
	l := s.loc(c.param("locationId"))
	if l == nil || l.id == l.company {
		return 0, notFoundErr("Location")
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return http.StatusOK, map[string]any{"location": locationRecord(l), "traceId": traceID()}
}

// hCreateLocation is POST /locations/ (agency): a new sub-account.
func hCreateLocation(s *Server, c *call) (int, any) {
	company := c.bodyStr("companyId")
	if company != c.tok.company {
		return 0, errf(http.StatusForbidden, "The token does not have access to this company.")
	}
	id := s.newID()
	l := s.ensureLocation(id, company)
	l.mu.Lock()
	for k, v := range c.body {
		if k != "snapshotId" && k != "prospectInfo" && k != "twilio" && k != "mailgun" {
			l.info[k] = v
		}
	}
	rec := locationRecord(l)
	l.mu.Unlock()
	return http.StatusOK, rec
}

func hSearchLocations(s *Server, c *call) (int, any) {
	company := c.tok.company
	if v := c.query("companyId"); v != "" && v != company {
		return 0, errf(http.StatusForbidden, "The token does not have access to this company.")
	}
	skip, limit := intArg(c.query("skip"), 0), intArg(c.query("limit"), 10)
	email := strings.ToLower(c.query("email"))
	var all []map[string]any
	for _, id := range s.companyLocations(company) {
		if c.tok.loc != "" && id != c.tok.loc {
			continue
		}
		l := s.loc(id)
		l.mu.RLock()
		rec := locationRecord(l)
		l.mu.RUnlock()
		if email != "" && lower(rec["email"]) != email {
			continue
		}
		all = append(all, rec)
	}
	if c.query("order") == "desc" {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	page := []map[string]any{}
	if skip < len(all) {
		page = all[skip:min(skip+limit, len(all))]
	}
	return http.StatusOK, map[string]any{"locations": page, "traceId": traceID()}
}

func hGetCompany(s *Server, c *call) (int, any) {
	id := c.param("companyId")
	if id != c.tok.company {
		return 0, errf(http.StatusForbidden, "The token does not have access to this company.")
	}
	return http.StatusOK, map[string]any{"company": map[string]any{
		"id": id, "name": "Sim Agency", "email": "agency@example.com", "phone": "+15550100001",
		"website": "https://agency.example", "domain": "app.agency.example", "address": "1 Agency Way",
		"city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US", "timezone": "America/Chicago",
		"currency": "USD", "customerType": "agency", "plan": 3, "subdomain": "agency", "logoUrl": "",
		"twilioTrialMode": false, "twilioFreeCredits": 0,
	}, "traceId": traceID()}
}

func hUsersByEmail(s *Server, c *call) (int, any) {
	if c.bodyStr("companyId") != c.tok.company {
		return 0, errf(http.StatusForbidden, "The token does not have access to this company.")
	}
	emails := map[string]bool{}
	list, _ := c.body["emails"].([]any)
	for _, e := range list {
		emails[strings.ToLower(fmtAny(e))] = true
	}
	deleted, _ := c.body["deleted"].(bool)
	skip, limit := intArg(c.body["skip"], 0), intArg(c.body["limit"], 25)
	l := s.ensureLocation(c.tok.company, c.tok.company)
	l.mu.RLock()
	var hits []*object
	if col := l.col(colUsers, false); col != nil {
		for _, o := range col.order {
			if emails[lower(o.data["email"])] && o.data["deleted"] == deleted {
				hits = append(hits, o)
			}
		}
	}
	total := len(hits)
	if skip < len(hits) {
		hits = hits[skip:min(skip+limit, len(hits))]
	} else {
		hits = nil
	}
	raw := rawArray(hits)
	l.mu.RUnlock()
	return http.StatusOK, listBody("users", raw, map[string]any{"count": total, "traceId": traceID()})
}
