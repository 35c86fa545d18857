package sim

import (
	"net/http"
	"strings"
	"time"
)

// Collection names.
const (
	colContacts = "contacts"
)

func tasksCol(contactID string) string { return "contacts/" + contactID + "/tasks" }
func notesCol(contactID string) string { return "contacts/" + contactID + "/notes" }

// contactFields are the writable contact properties.
var contactFields = []string{"firstName", "lastName", "name", "email", "gender", "phone", "address1", "city", "state",
	"postalCode", "website", "timezone", "dnd", "dndSettings", "inboundDndSettings", "tags", "customFields", "source",
	"dateOfBirth", "country", "companyName", "assignedTo", "businessId", "type"}

// newContact builds a contact record as GHL returns it.
func (s *Server) newContact(loc string, fields map[string]any, now time.Time) map[string]any {
	d := map[string]any{
		"id": s.newID(), "locationId": loc, "type": "lead", "tags": []any{}, "customFields": []any{},
		"dnd": false, "dndSettings": map[string]any{}, "followers": []any{}, "attributions": []any{},
		"source": "", "country": "US", "timezone": "", "deleted": false,
		"dateAdded": isoTime(now), "dateUpdated": isoTime(now),
	}
	applyContact(d, fields)
	return d
}

// applyContact copies writable fields into a contact and derives the
// computed ones (lower-case names, full name).
func applyContact(d, fields map[string]any) {
	for _, k := range contactFields {
		if v, ok := fields[k]; ok {
			if k == "tags" {
				d[k] = normTags(v)
				continue
			}
			d[k] = v
		}
	}
	first, _ := d["firstName"].(string)
	last, _ := d["lastName"].(string)
	if n, _ := fields["name"].(string); n != "" && first == "" && last == "" {
		if i := strings.IndexByte(n, ' '); i > 0 {
			first, last = n[:i], n[i+1:]
		} else {
			first = n
		}
		d["firstName"], d["lastName"] = first, last
	}
	full := strings.TrimSpace(first + " " + last)
	if full != "" {
		d["contactName"] = full
		d["name"] = full
	}
	d["firstNameLowerCase"] = strings.ToLower(first)
	d["lastNameLowerCase"] = strings.ToLower(last)
	d["fullNameLowerCase"] = strings.ToLower(full)
	if e, _ := d["email"].(string); e != "" {
		d["emailLowerCase"] = strings.ToLower(e)
	}
}

// normTags lower-cases and de-duplicates tags as GHL does.
func normTags(v any) []any {
	out := []any{}
	seen := map[string]bool{}
	add := func(t string) {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				add(s)
			}
		}
	case []string:
		for _, s := range x {
			add(s)
		}
	case string:
		for _, s := range strings.Split(x, ",") {
			add(s)
		}
	}
	return out
}

// findDuplicate returns the contact with the same email or phone, or nil;
// the caller holds the location's lock.
func findDuplicate(col *collection, email, phone string) *object {
	if col == nil || (email == "" && phone == "") {
		return nil
	}
	email = strings.ToLower(email)
	if email != "" {
		for _, o := range col.order {
			if e, _ := o.data["email"].(string); e != "" && strings.ToLower(e) == email {
				return o
			}
		}
	}
	if phone != "" {
		for _, o := range col.order {
			if p, _ := o.data["phone"].(string); p == phone {
				return o
			}
		}
	}
	return nil
}

func duplicateError(o *object) *apiError {
	field := "email"
	if e, _ := o.data["email"].(string); e == "" {
		field = "phone"
	}
	return &apiError{status: http.StatusBadRequest, msg: "This location does not allow duplicated contacts.",
		extra: map[string]any{"meta": map[string]any{"contactName": o.data["name"], "contactId": o.id, "matchingField": field}}}
}

// CreateContact adds a contact to a location as if created in the app (no
// request is logged; a ContactCreate webhook is sent) and returns it.
func (s *Server) CreateContact(loc string, fields map[string]any) map[string]any {
	l := s.ensureLocation(loc, "")
	now := s.now()
	l.mu.Lock()
	now = l.stamp(now)
	d := s.newContact(loc, fields, now)
	o := newObject(d["id"].(string), now, d)
	l.col(colContacts, true).put(o)
	out := o.clone()
	l.mu.Unlock()
	s.emit(loc, "ContactCreate", out)
	return out
}

// UpdateContact changes a contact's fields as if edited in the app and
// returns it, or nil when there is no such contact.
func (s *Server) UpdateContact(loc, id string, fields map[string]any) map[string]any {
	l := s.loc(loc)
	if l == nil {
		return nil
	}
	l.mu.Lock()
	o := l.col(colContacts, true).get(id)
	if o == nil {
		l.mu.Unlock()
		return nil
	}
	applyContact(o.data, fields)
	o.data["dateUpdated"] = isoTime(s.now())
	o.encode()
	out := o.clone()
	l.mu.Unlock()
	s.emit(loc, "ContactUpdate", out)
	return out
}

// Contact returns a stored contact, or nil.
func (s *Server) Contact(loc, id string) map[string]any {
	l := s.loc(loc)
	if l == nil {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if c := l.col(colContacts, false); c != nil {
		if o := c.get(id); o != nil {
			return o.clone()
		}
	}
	return nil
}

func contactNotFound() *apiError { return errf(http.StatusNotFound, "Contact not found") }

func hCreateContact(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.Lock()
	col := l.col(colContacts, true)
	if dup := findDuplicate(col, c.bodyStr("email"), c.bodyStr("phone")); dup != nil {
		l.mu.Unlock()
		return 0, duplicateError(dup)
	}
	now := l.stamp(c.now)
	d := s.newContact(l.id, c.body, now)
	o := newObject(d["id"].(string), now, d)
	col.put(o)
	raw := o.raw
	l.mu.Unlock()
	s.emitRaw(l.id, "ContactCreate", raw)
	return http.StatusCreated, wrapOne("contact", raw)
}

func hUpsertContact(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.Lock()
	col := l.col(colContacts, true)
	o := findDuplicate(col, c.bodyStr("email"), c.bodyStr("phone"))
	isNew := o == nil
	if isNew {
		now := l.stamp(c.now)
		d := s.newContact(l.id, c.body, now)
		o = newObject(d["id"].(string), now, d)
		col.put(o)
	} else {
		applyContact(o.data, c.body)
		o.data["dateUpdated"] = isoTime(c.now)
		o.encode()
	}
	raw := o.raw
	l.mu.Unlock()
	if isNew {
		s.emitRaw(l.id, "ContactCreate", raw)
	} else {
		s.emitRaw(l.id, "ContactUpdate", raw)
	}
	body := withField(wrapOne("contact", raw), "new", isNew)
	return http.StatusOK, withField(body, "traceId", traceID())
}

func hGetContact(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.RLock()
	defer l.mu.RUnlock()
	col := l.col(colContacts, false)
	if col == nil {
		return 0, contactNotFound()
	}
	o := col.get(c.param("contactId"))
	if o == nil {
		return 0, contactNotFound()
	}
	return http.StatusOK, wrapOne("contact", o.raw)
}

// withContact runs f on a contact under the location's write lock; after f
// the contact is re-encoded and stamped when f reports a change.
func (s *Server) withContact(c *call, f func(o *object) (changed bool)) (*object, []byte, *apiError) {
	l := c.loc
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.col(colContacts, true).get(c.param("contactId"))
	if o == nil {
		return nil, nil, contactNotFound()
	}
	if f(o) {
		o.data["dateUpdated"] = isoTime(c.now)
		o.encode()
	}
	return o, o.raw, nil
}

func hUpdateContact(s *Server, c *call) (int, any) {
	_, raw, e := s.withContact(c, func(o *object) bool { applyContact(o.data, c.body); return true })
	if e != nil {
		return 0, e
	}
	s.emitRaw(c.loc.id, "ContactUpdate", raw)
	return http.StatusOK, withField(wrapOne("contact", raw), "succeded", true)
}

func hDeleteContact(s *Server, c *call) (int, any) {
	l := c.loc
	id := c.param("contactId")
	l.mu.Lock()
	o := l.col(colContacts, true).remove(id)
	if o != nil {
		delete(l.cols, tasksCol(id))
		delete(l.cols, notesCol(id))
	}
	l.mu.Unlock()
	if o == nil {
		return 0, contactNotFound()
	}
	s.emitRaw(l.id, "ContactDelete", o.raw)
	return http.StatusOK, map[string]any{"succeded": true}
}

func tagsOf(o *object) []any {
	t, _ := o.data["tags"].([]any)
	return t
}

func hAddTags(s *Server, c *call) (int, any) {
	add := normTags(c.body["tags"])
	var tags []any
	_, raw, e := s.withContact(c, func(o *object) bool {
		tags = normTags(append(append([]any{}, tagsOf(o)...), add...))
		o.data["tags"] = tags
		return true
	})
	if e != nil {
		return 0, e
	}
	s.emitRaw(c.loc.id, "ContactTagUpdate", raw)
	return http.StatusCreated, map[string]any{"tags": tags}
}

func hRemoveTags(s *Server, c *call) (int, any) {
	drop := map[string]bool{}
	for _, t := range normTags(c.body["tags"]) {
		drop[t.(string)] = true
	}
	keep := []any{}
	_, raw, e := s.withContact(c, func(o *object) bool {
		for _, t := range tagsOf(o) {
			if !drop[t.(string)] {
				keep = append(keep, t)
			}
		}
		o.data["tags"] = keep
		return true
	})
	if e != nil {
		return 0, e
	}
	s.emitRaw(c.loc.id, "ContactTagUpdate", raw)
	return http.StatusOK, map[string]any{"tags": keep}
}

func hBulkTags(s *Server, c *call) (int, any) {
	typ := c.param("type")
	if typ != "add" && typ != "remove" {
		return 0, unprocessable("type must be one of the following values: add, remove")
	}
	ids, _ := c.body["contacts"].([]any)
	tags := normTags(c.body["tags"])
	l := c.loc
	var responses []any
	errs := 0
	l.mu.Lock()
	col := l.col(colContacts, true)
	for _, v := range ids {
		id, _ := v.(string)
		o := col.get(id)
		if o == nil {
			errs++
			responses = append(responses, "contact "+id+" not found")
			continue
		}
		if typ == "add" {
			o.data["tags"] = normTags(append(append([]any{}, tagsOf(o)...), tags...))
		} else {
			drop := map[string]bool{}
			for _, t := range tags {
				drop[t.(string)] = true
			}
			keep := []any{}
			for _, t := range tagsOf(o) {
				if !drop[t.(string)] {
					keep = append(keep, t)
				}
			}
			o.data["tags"] = keep
		}
		o.data["dateUpdated"] = isoTime(c.now)
		o.encode()
		responses = append(responses, id)
	}
	l.mu.Unlock()
	if responses == nil {
		responses = []any{}
	}
	return http.StatusCreated, map[string]any{"succeded": errs == 0, "errorCount": errs, "responses": responses}
}

func hFollowers(add bool) handler {
	return func(s *Server, c *call) (int, any) {
		list, _ := c.body["followers"].([]any)
		var changed, followers []any
		_, _, e := s.withContact(c, func(o *object) bool {
			cur, _ := o.data["followers"].([]any)
			followers, changed = editList(cur, list, add)
			o.data["followers"] = followers
			return len(changed) > 0
		})
		if e != nil {
			return 0, e
		}
		if add {
			return http.StatusCreated, map[string]any{"followers": followers, "followersAdded": changed}
		}
		return http.StatusOK, map[string]any{"followers": followers, "followersRemoved": changed}
	}
}

// editList adds or removes string values, returning the new list and the
// values that changed it.
func editList(cur, vals []any, add bool) ([]any, []any) {
	changed := []any{}
	has := map[any]bool{}
	for _, v := range cur {
		has[v] = true
	}
	if add {
		out := append([]any{}, cur...)
		for _, v := range vals {
			if !has[v] {
				has[v] = true
				out = append(out, v)
				changed = append(changed, v)
			}
		}
		return out, changed
	}
	drop := map[any]bool{}
	for _, v := range vals {
		if has[v] {
			drop[v] = true
			changed = append(changed, v)
		}
	}
	out := []any{}
	for _, v := range cur {
		if !drop[v] {
			out = append(out, v)
		}
	}
	return out, changed
}

// hContactMembership records adding a contact to (or removing it from) a
// campaign or workflow, kept on the contact under key.
func hContactMembership(key, param string, add bool) handler {
	return func(s *Server, c *call) (int, any) {
		target := c.param(param)
		_, _, e := s.withContact(c, func(o *object) bool {
			cur, _ := o.data[key].([]any)
			switch {
			case target == "" || target == "removeAll":
				cur = []any{}
			default:
				cur, _ = editList(cur, []any{target}, add)
			}
			o.data[key] = cur
			return true
		})
		if e != nil {
			return 0, e
		}
		if add {
			return http.StatusCreated, map[string]any{"succeded": true}
		}
		return http.StatusOK, map[string]any{"succeded": true}
	}
}
