package sim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Collections of the GHL resources served generically.
const (
	colEvents        = "calendars/events"
	colBlocked       = "calendars/blocked-slots"
	colCalendars     = "calendars"
	colGroups        = "calendars/groups"
	colBusinesses    = "businesses"
	colOpps          = "opportunities"
	colPipelines     = "opportunities/pipelines"
	colConversations = "conversations"
	colMessages      = "conversations/messages"
	colUsers         = "users"
	colWorkflows     = "workflows"
	colCampaigns     = "campaigns"
	colCustomFields  = "customFields"
	colSnapshots     = "snapshots"
	colAssociations  = "associations"
	colRelations     = "associations/relations"
	colBlogSites     = "blogs/sites"
	colBlogAuthors   = "blogs/authors"
	colBlogCats      = "blogs/categories"
	colBlogPosts     = "blogs/posts"
)

// offsetTime is the calendar events' time form: ISO 8601 with an offset.
func offsetTime(t time.Time) string { return t.Format("2006-01-02T15:04:05-07:00") }

// timeInput parses a time sent as epoch ms or ISO 8601.
func timeInput(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(n), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05-07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// inWindow keeps events whose startTime falls in [startTime, endTime] of the
// query, and applies the userId filter on assignedUserId or users.
func inWindow(c *call, o *object) bool {
	from, okf := timeInput(c.query("startTime"))
	to, okt := timeInput(c.query("endTime"))
	st, ok := o.data["startTime"].(string)
	if ok && (okf || okt) {
		t, good := timeInput(st)
		if good && ((okf && t.Before(from)) || (okt && t.After(to))) {
			return false
		}
	}
	if u := c.query("userId"); u != "" {
		if o.data["assignedUserId"] != u {
			return false
		}
	}
	return true
}

func eventDefaults(s *Server, l *location, now time.Time) map[string]any {
	start := now.Add(24 * time.Hour).Truncate(time.Hour)
	return map[string]any{"title": "Appointment", "appointmentStatus": "confirmed", "status": "confirmed",
		"startTime": offsetTime(start), "endTime": offsetTime(start.Add(30 * time.Minute)), "address": "",
		"isRecurring": false, "users": []any{}, "assignedResources": []any{}, "notes": "", "description": "",
		"assignedUserId": "", "contactId": "", "groupId": "",
		"createdBy": map[string]any{"source": "third_party", "userId": ""}}
}

// fillEnd sets endTime to 30 minutes after startTime when it is missing.
func fillEnd(s *Server, c *call, d map[string]any) *apiError {
	if st, ok := d["startTime"].(string); ok {
		if _, ok := d["endTime"]; !ok {
			if t, good := timeInput(st); good {
				d["endTime"] = offsetTime(t.Add(30 * time.Minute))
			}
		}
	}
	if c.r.Method == http.MethodPost {
		if cid, _ := d["contactId"].(string); cid != "" && c.s != nil {
			if cc := c.loc.col(colContacts, false); cc == nil || cc.get(cid) == nil {
				return contactNotFound()
			}
		}
	}
	return nil
}

func opportunityDefaults(s *Server, l *location, now time.Time) map[string]any {
	return map[string]any{"status": "open", "monetaryValue": 0, "source": "", "assignedTo": "", "followers": []any{},
		"customFields": []any{}, "lastStatusChangeAt": isoTime(now), "lastStageChangeAt": isoTime(now)}
}

// linkContact embeds the contact summary GHL returns on opportunities.
func linkContact(s *Server, c *call, d map[string]any) *apiError {
	cid, _ := d["contactId"].(string)
	if cid == "" {
		return nil
	}
	cc := c.loc.col(colContacts, false)
	var o *object
	if cc != nil {
		o = cc.get(cid)
	}
	if o == nil {
		return contactNotFound()
	}
	d["contact"] = contactSummary(o)
	return nil
}

func userDefaults(s *Server, l *location, now time.Time) map[string]any {
	return map[string]any{"phone": "", "extension": "", "deleted": false, "scopes": "contacts.write", "permissions": map[string]any{
		"contactsEnabled": true, "opportunitiesEnabled": true, "appointmentsEnabled": true, "conversationsEnabled": true},
		"roles": map[string]any{"type": "account", "role": "user", "locationIds": []any{}}}
}

// userFields maps the flat write body of users to their stored shape.
func userFields(s *Server, c *call, d map[string]any) *apiError {
	if f, ok := c.body["firstName"].(string); ok {
		d["firstName"] = f
	}
	first, _ := d["firstName"].(string)
	last, _ := d["lastName"].(string)
	d["name"] = strings.TrimSpace(first + " " + last)
	roles, _ := d["roles"].(map[string]any)
	if roles == nil {
		roles = map[string]any{}
	}
	for _, k := range []string{"type", "role", "locationIds"} {
		if v, ok := c.body[k]; ok {
			roles[k] = v
			delete(d, k)
		}
	}
	d["roles"] = roles
	delete(d, "password")
	delete(d, "companyId")
	return nil
}

func calendarDefaults(s *Server, l *location, now time.Time) map[string]any {
	return map[string]any{"isActive": true, "description": "", "slug": "", "widgetSlug": "", "calendarType": "event",
		"eventType": "RoundRobin_OptimizeForAvailability", "slotDuration": 30, "slotDurationUnit": "mins",
		"slotInterval": 30, "slotIntervalUnit": "mins", "notifications": []any{}, "teamMembers": []any{},
		"openHours": []any{}, "widgetType": "classic", "eventTitle": "{{contact.name}}", "eventColor": "#039be5"}
}

// gens are the GHL operations served by the generic handlers.
var gens = map[string]*gen{
	// Appointments and blocked slots.
	"ghl.appointments.by_contact": {act: "list", col: colEvents, filters: map[string]string{"contactId": "contactId"},
		match:  func(c *call, o *object) bool { return o.data["contactId"] == c.param("contactId") },
		parent: &parentRef{colContacts, "contactId", "Contact"}},
	"ghl.appointments.events.list": {act: "list", col: colEvents, match: inWindow,
		filters: map[string]string{"calendarId": "calendarId", "groupId": "groupId"}},
	"ghl.appointments.blocked_slots.list": {act: "list", col: colBlocked, match: inWindow,
		filters: map[string]string{"calendarId": "calendarId", "groupId": "groupId"}},
	"ghl.appointments.get": {act: "get", col: colEvents, idParam: "eventId"},
	"ghl.appointments.create": {act: "create", col: colEvents, created: "dateAdded", updated: "dateUpdated",
		defaults: eventDefaults, mutate: fillEnd, status: http.StatusOK, event: "Appointment"},
	"ghl.appointments.update": {act: "update", col: colEvents, idParam: "eventId", updated: "dateUpdated",
		mutate: fillEnd, event: "Appointment"},
	"ghl.appointments.block_slots.create": {act: "create", col: colBlocked, created: "dateAdded", updated: "dateUpdated",
		defaults: eventDefaults, mutate: fillEnd},
	"ghl.appointments.block_slots.update": {act: "update", col: colBlocked, idParam: "eventId", updated: "dateUpdated",
		status: http.StatusCreated},
	"ghl.appointments.notes.list": {act: "list", col: "calendars/appointments/{appointmentId}/notes",
		parent: &parentRef{colEvents, "appointmentId", "Appointment"}},
	"ghl.appointments.notes.create": {act: "create", col: "calendars/appointments/{appointmentId}/notes",
		created: "dateAdded", parent: &parentRef{colEvents, "appointmentId", "Appointment"},
		mutate: func(s *Server, c *call, d map[string]any) *apiError {
			uid, _ := d["userId"].(string)
			d["createdBy"] = map[string]any{"id": uid, "name": ""}
			return nil
		}},
	"ghl.appointments.notes.update": {act: "update", col: "calendars/appointments/{appointmentId}/notes", idParam: "noteId",
		parent: &parentRef{colEvents, "appointmentId", "Appointment"}},
	"ghl.appointments.notes.delete": {act: "delete", col: "calendars/appointments/{appointmentId}/notes", idParam: "noteId",
		parent: &parentRef{colEvents, "appointmentId", "Appointment"}, result: map[string]any{"success": true}},

	// Associations and relations.
	"ghl.associations.list": {act: "list", col: colAssociations},
	"ghl.associations.get":  {act: "get", col: colAssociations, idParam: "associationId"},
	"ghl.associations.by_key": {act: "get", col: colAssociations, idParam: "key_name",
		respond: func(c *call, o *object) any { return o.raw }},
	"ghl.associations.by_object_key": {act: "get", col: colAssociations, idParam: "objectKey",
		respond: func(c *call, o *object) any { return o.raw }},
	"ghl.associations.create": {act: "create", col: colAssociations, mutate: func(s *Server, c *call, d map[string]any) *apiError {
		d["associationType"] = "USER_DEFINED"
		return nil
	}},
	"ghl.associations.update": {act: "update", col: colAssociations, idParam: "associationId"},
	"ghl.associations.delete": {act: "delete", col: colAssociations, idParam: "associationId",
		respond: func(c *call, o *object) any {
			return map[string]any{"deleted": true, "id": o.id, "message": "Association deleted successfully"}
		}},
	"ghl.relations.by_record": {act: "list", col: colRelations,
		match: func(c *call, o *object) bool {
			r := c.param("recordId")
			return o.data["firstRecordId"] == r || o.data["secondRecordId"] == r
		}},
	"ghl.relations.create": {act: "create", col: colRelations, mutate: checkRelation},
	"ghl.relations.delete": {act: "delete", col: colRelations, idParam: "relationId",
		respond: func(c *call, o *object) any { return o.raw }},

	// Blogs.
	"ghl.blogs.authors.list":    {act: "list", col: colBlogAuthors},
	"ghl.blogs.categories.list": {act: "list", col: colBlogCats},
	"ghl.blogs.list": {act: "list", col: colBlogSites, match: func(c *call, o *object) bool {
		return strings.Contains(lower(o.data["name"]), strings.ToLower(c.query("searchTerm")))
	}},
	"ghl.blogs.posts.list": {act: "list", col: colBlogPosts, filters: map[string]string{"blogId": "blogId", "status": "status"},
		match: func(c *call, o *object) bool {
			return strings.Contains(lower(o.data["title"]), strings.ToLower(c.query("searchTerm")))
		}},
	"ghl.blogs.posts.create": {act: "create", col: colBlogPosts, idField: "_id", updated: "updatedAt", status: http.StatusOK,
		mutate: checkSlug, defaults: func(s *Server, l *location, now time.Time) map[string]any {
			return map[string]any{"archived": false, "tags": []any{}, "categories": []any{}}
		}},
	"ghl.blogs.posts.update": {act: "update", col: colBlogPosts, idField: "_id", idParam: "postId", updated: "updatedAt"},

	// Businesses.
	"ghl.businesses.get":  {act: "get", col: colBusinesses, idParam: "businessId"},
	"ghl.businesses.list": {act: "list", col: colBusinesses},
	"ghl.businesses.create": {act: "create", col: colBusinesses, created: "createdAt", updated: "updatedAt",
		result: map[string]any{"success": true}, defaults: func(s *Server, l *location, now time.Time) map[string]any {
			return map[string]any{"createdBy": map[string]any{"source": "INTEGRATION", "channel": "OAUTH", "timestamp": isoTime(now)}}
		}},
	"ghl.businesses.update": {act: "update", col: colBusinesses, idParam: "businessId", updated: "updatedAt",
		result: map[string]any{"success": true}},
	"ghl.businesses.delete": {act: "delete", col: colBusinesses, idParam: "businessId", result: map[string]any{"success": true}},

	// Calendars, groups, notifications, resources.
	"ghl.calendars.groups.list": {act: "list", col: colGroups},
	"ghl.calendars.groups.create": {act: "create", col: colGroups, mutate: groupSlug,
		defaults: func(s *Server, l *location, now time.Time) map[string]any { return map[string]any{"isActive": true} }},
	"ghl.calendars.groups.update": {act: "update", col: colGroups, idParam: "groupId"},
	"ghl.calendars.groups.status": {act: "update", col: colGroups, idParam: "groupId", fields: []string{"isActive"},
		result: map[string]any{"success": true}},
	"ghl.calendars.groups.delete": {act: "delete", col: colGroups, idParam: "groupId", result: map[string]any{"success": true}},
	"ghl.calendars.list":          {act: "list", col: colCalendars, filters: map[string]string{"groupId": "groupId"}},
	"ghl.calendars.get":           {act: "get", col: colCalendars, idParam: "calendarId"},
	"ghl.calendars.create": {act: "create", col: colCalendars, defaults: calendarDefaults, status: http.StatusOK,
		mutate: func(s *Server, c *call, d map[string]any) *apiError {
			if _, ok := d["slug"]; !ok {
				d["slug"] = slugify(c.bodyStr("name"))
			}
			return nil
		}},
	"ghl.calendars.update": {act: "update", col: colCalendars, idParam: "calendarId"},
	"ghl.calendars.delete": {act: "delete", col: colCalendars, idParam: "calendarId", result: map[string]any{"success": true}},
	"ghl.calendars.notifications.list": {act: "list", col: "calendars/{calendarId}/notifications", idField: "_id",
		parent:  &parentRef{colCalendars, "calendarId", "Calendar"},
		filters: map[string]string{"isActive": "isActive", "deleted": "deleted"}},
	"ghl.calendars.notifications.get": {act: "get", col: "calendars/{calendarId}/notifications", idField: "_id",
		idParam: "notificationId", parent: &parentRef{colCalendars, "calendarId", "Calendar"}},
	"ghl.calendars.notifications.update": {act: "update", col: "calendars/{calendarId}/notifications", idField: "_id",
		idParam: "notificationId", parent: &parentRef{colCalendars, "calendarId", "Calendar"},
		result: map[string]any{"message": "Notification updated successfully"}},
	"ghl.calendars.notifications.delete": {act: "delete", col: "calendars/{calendarId}/notifications", idField: "_id",
		idParam: "notificationId", parent: &parentRef{colCalendars, "calendarId", "Calendar"},
		result: map[string]any{"message": "Notification deleted successfully"}},
	"ghl.calendars.resources.list": {act: "list", col: "calendars/resources/{resourceType}"},
	"ghl.calendars.resources.get":  {act: "get", col: "calendars/resources/{resourceType}", idParam: "id"},
	"ghl.calendars.resources.create": {act: "create", col: "calendars/resources/{resourceType}",
		mutate: func(s *Server, c *call, d map[string]any) *apiError {
			d["resourceType"] = c.param("resourceType")
			d["isActive"] = true
			return nil
		}},
	"ghl.calendars.resources.update": {act: "update", col: "calendars/resources/{resourceType}", idParam: "id"},
	"ghl.calendars.resources.delete": {act: "delete", col: "calendars/resources/{resourceType}", idParam: "id",
		result: map[string]any{"success": true}},

	// Conversations.
	"ghl.conversations.get": {act: "get", col: colConversations, idParam: "conversationId"},
	"ghl.conversations.emails.get": {act: "get", col: colMessages, idParam: "id",
		match: func(c *call, o *object) bool { return o.data["messageType"] == "TYPE_EMAIL" }},
	"ghl.conversations.messages.get": {act: "get", col: colMessages, idParam: "id"},
	"ghl.conversations.messages.recording": {act: "get", col: colMessages, idParam: "messageId",
		respond: func(c *call, o *object) any { return rawBody{"audio/x-wav", fakeWAV} }},
	"ghl.conversations.messages.transcription": {act: "get", col: colMessages, idParam: "messageId",
		respond: func(c *call, o *object) any {
			return []map[string]any{{"mediaChannel": 1, "sentenceIndex": 0, "startTime": 0, "endTime": 2400,
				"transcript": "Hello, thanks for calling.", "confidence": 0.93}}
		}},
	"ghl.conversations.messages.transcription_download": {act: "get", col: colMessages, idParam: "messageId",
		respond: func(c *call, o *object) any {
			return rawBody{"text/plain; charset=utf-8", []byte("Channel 1 [00:00]: Hello, thanks for calling.\n")}
		}},
	"ghl.conversations.messages.status": {act: "update", col: colMessages, idParam: "messageId",
		fields: []string{"status", "error"}, respond: func(c *call, o *object) any {
			return map[string]any{"conversationId": o.data["conversationId"], "messageId": o.id, "status": o.data["status"],
				"msg": "Message status updated"}
		}},
	"ghl.conversations.typing": {act: "noop", status: http.StatusCreated, result: map[string]any{"success": true},
		parent: &parentRef{colConversations, "conversationId", "Conversation"}},

	// Locations.
	"ghl.locations.snapshots.list":     {act: "list", col: colSnapshots, company: true},
	"ghl.locations.custom_fields.list": {act: "list", col: colCustomFields, filters: map[string]string{"model": "model"}},

	// Opportunities.
	"ghl.opportunities.get":            {act: "get", col: colOpps, idParam: "id"},
	"ghl.opportunities.pipelines.list": {act: "list", col: colPipelines},
	"ghl.opportunities.create": {act: "create", col: colOpps, created: "createdAt", updated: "updatedAt",
		defaults: opportunityDefaults, mutate: linkContact, event: "Opportunity"},
	"ghl.opportunities.update": {act: "update", col: colOpps, idParam: "id", updated: "updatedAt", event: "Opportunity",
		mutate: statusChange},
	"ghl.opportunities.delete": {act: "delete", col: colOpps, idParam: "id", event: "Opportunity"},
	"ghl.opportunities.status": {act: "update", col: colOpps, idParam: "id", updated: "updatedAt",
		fields: []string{"status", "lostReasonId"}, mutate: statusChange, result: map[string]any{"succeded": true},
		event: "OpportunityStatus"},

	// Users (agency level).
	"ghl.users.get": {act: "get", col: colUsers, idParam: "userId", company: true},
	"ghl.users.list": {act: "list", col: colUsers, company: true,
		filters: map[string]string{"locationId": "roles.locationIds"}},
	"ghl.users.search": {act: "list", col: colUsers, company: true,
		filters: map[string]string{"locationId": "roles.locationIds", "type": "roles.type", "role": "roles.role"},
		match: func(c *call, o *object) bool {
			q := strings.ToLower(c.query("query"))
			return q == "" || strings.Contains(lower(o.data["name"]), q) || strings.Contains(lower(o.data["email"]), q)
		}},
	"ghl.users.create": {act: "create", col: colUsers, company: true, defaults: userDefaults, mutate: userFields},
	"ghl.users.update": {act: "update", col: colUsers, idParam: "userId", company: true, mutate: userFields},
	"ghl.users.delete": {act: "delete", col: colUsers, idParam: "userId", company: true,
		result: map[string]any{"succeded": true, "message": "Queued deleting user with e-mail and name"}},

	// Workflows and campaigns (read-only lists).
	"ghl.workflows.list": {act: "list", col: colWorkflows},
	"ghl.campaigns.list": {act: "list", col: colCampaigns, filters: map[string]string{"status": "status"}},
}

// statusChange stamps lastStatusChangeAt when a status is written.
func statusChange(s *Server, c *call, d map[string]any) *apiError {
	if st, ok := c.body["status"].(string); ok {
		switch st {
		case "open", "won", "lost", "abandoned", "all":
		default:
			return unprocessable("status must be one of the following values: open, won, lost, abandoned")
		}
		d["lastStatusChangeAt"] = isoTime(c.now)
	}
	if _, ok := c.body["pipelineStageId"]; ok {
		d["lastStageChangeAt"] = isoTime(c.now)
	}
	return nil
}

// checkRelation refuses a second relation of the same records and
// association, as GHL does.
func checkRelation(s *Server, c *call, d map[string]any) *apiError {
	if col := c.loc.col(colRelations, false); col != nil {
		for _, o := range col.order {
			if o.data["associationId"] == d["associationId"] && o.data["firstRecordId"] == d["firstRecordId"] &&
				o.data["secondRecordId"] == d["secondRecordId"] {
				return errf(http.StatusBadRequest, "Could not create relation: duplicate relation of object Ids for given association")
			}
		}
	}
	return nil
}

func checkSlug(s *Server, c *call, d map[string]any) *apiError {
	slug, _ := d["urlSlug"].(string)
	if col := c.loc.col(colBlogPosts, false); col != nil && slug != "" {
		for _, o := range col.order {
			if o.data["urlSlug"] == slug {
				return errf(http.StatusBadRequest, "URL slug already exists")
			}
		}
	}
	return nil
}

func groupSlug(s *Server, c *call, d map[string]any) *apiError {
	slug, _ := d["slug"].(string)
	if col := c.loc.col(colGroups, false); col != nil && slug != "" {
		for _, o := range col.order {
			if o.data["slug"] == slug {
				return errf(http.StatusBadRequest, "Slug already in use")
			}
		}
	}
	return nil
}

func slugify(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// rawBody is a non-JSON answer.
type rawBody struct {
	contentType string
	b           []byte
}

// fakeWAV is a tiny valid WAV file (44-byte header, no samples).
var fakeWAV = []byte("RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")

// contactSummary is the contact GHL embeds in opportunities.
func contactSummary(o *object) map[string]any {
	str := func(k string) string { v, _ := o.data[k].(string); return v }
	tags, _ := o.data["tags"].([]any)
	if tags == nil {
		tags = []any{}
	}
	return map[string]any{"id": o.id, "name": str("name"), "companyName": str("companyName"),
		"email": str("email"), "phone": str("phone"), "tags": tags}
}
