package sim

import (
	"net/http"
	"strings"
)

// taskFields and noteFields are the writable properties of contact tasks and
// notes. Tasks carry no created or updated time and notes no updated time,
// as in GHL.
var (
	taskFields = []string{"title", "body", "dueDate", "completed", "assignedTo"}
	noteFields = []string{"body", "userId", "title", "color", "pinned"}
)

func copyFields(dst, src map[string]any, fields []string) {
	for _, k := range fields {
		if v, ok := src[k]; ok {
			dst[k] = v
		}
	}
}

// childOf runs f under the location's write lock with the contact's child
// collection; the contact must exist.
func (s *Server) childOf(c *call, colName func(string) string, f func(col *collection) (int, any)) (int, any) {
	l := c.loc
	cid := c.param("contactId")
	l.mu.Lock()
	defer l.mu.Unlock()
	if cc := l.col(colContacts, false); cc == nil || cc.get(cid) == nil {
		return 0, contactNotFound()
	}
	return f(l.col(colName(cid), true))
}

func hListChildren(colName func(string) string, key string) handler {
	return func(s *Server, c *call) (int, any) {
		return s.childOf(c, colName, func(col *collection) (int, any) {
			return http.StatusOK, listBody(key, rawArray(col.order), nil)
		})
	}
}

func hGetChild(colName func(string) string, key, idParam, what string) handler {
	return func(s *Server, c *call) (int, any) {
		return s.childOf(c, colName, func(col *collection) (int, any) {
			o := col.get(c.param(idParam))
			if o == nil {
				return 0, errf(http.StatusNotFound, what+" not found")
			}
			return http.StatusOK, wrapOne(key, o.raw)
		})
	}
}

func hDeleteChild(colName func(string) string, idParam, what string) handler {
	return func(s *Server, c *call) (int, any) {
		return s.childOf(c, colName, func(col *collection) (int, any) {
			if col.remove(c.param(idParam)) == nil {
				return 0, errf(http.StatusNotFound, what+" not found")
			}
			return http.StatusOK, map[string]any{"succeded": true}
		})
	}
}

func hCreateTask(s *Server, c *call) (int, any) {
	var raw []byte
	st, body := s.childOf(c, tasksCol, func(col *collection) (int, any) {
		now := c.loc.stamp(c.now)
		d := map[string]any{"id": s.newID(), "contactId": c.param("contactId"), "completed": false, "body": ""}
		copyFields(d, c.body, taskFields)
		o := newObject(d["id"].(string), now, d)
		col.put(o)
		raw = o.raw
		return http.StatusCreated, wrapOne("task", o.raw)
	})
	if raw != nil {
		s.emitRaw(c.loc.id, "TaskCreate", raw)
	}
	return st, body
}

func hUpdateTask(completeOnly bool) handler {
	return func(s *Server, c *call) (int, any) {
		var raw []byte
		completed := false
		st, body := s.childOf(c, tasksCol, func(col *collection) (int, any) {
			o := col.get(c.param("taskId"))
			if o == nil {
				return 0, errf(http.StatusNotFound, "Task not found")
			}
			if completeOnly {
				v, ok := c.body["completed"].(bool)
				if !ok {
					return 0, unprocessable("completed must be a boolean value")
				}
				o.data["completed"] = v
			} else {
				copyFields(o.data, c.body, taskFields)
			}
			o.encode()
			raw = o.raw
			completed, _ = o.data["completed"].(bool)
			return http.StatusOK, wrapOne("task", o.raw)
		})
		if raw != nil && completed {
			s.emitRaw(c.loc.id, "TaskComplete", raw)
		}
		return st, body
	}
}

func hCreateNote(s *Server, c *call) (int, any) {
	var raw []byte
	st, body := s.childOf(c, notesCol, func(col *collection) (int, any) {
		now := c.loc.stamp(c.now)
		d := map[string]any{"id": s.newID(), "contactId": c.param("contactId"), "dateAdded": isoTime(now)}
		copyFields(d, c.body, noteFields)
		o := newObject(d["id"].(string), now, d)
		col.put(o)
		raw = o.raw
		return http.StatusCreated, wrapOne("note", o.raw)
	})
	if raw != nil {
		s.emitRaw(c.loc.id, "NoteCreate", raw)
	}
	return st, body
}

func hUpdateNote(s *Server, c *call) (int, any) {
	var raw []byte
	st, body := s.childOf(c, notesCol, func(col *collection) (int, any) {
		o := col.get(c.param("id"))
		if o == nil {
			return 0, errf(http.StatusNotFound, "Note not found")
		}
		copyFields(o.data, c.body, noteFields)
		o.encode()
		raw = o.raw
		return http.StatusOK, wrapOne("note", o.raw)
	})
	if raw != nil {
		s.emitRaw(c.loc.id, "NoteUpdate", raw)
	}
	return st, body
}

// hSearchTasks is POST /locations/{locationId}/tasks/search: the tasks of
// every contact, oldest contact first, filtered by contactId[], completed
// and query (in the title), then skip and limit.
func hSearchTasks(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.RLock()
	defer l.mu.RUnlock()
	ids, _ := c.body["contactId"].([]any)
	done, byDone := c.body["completed"].(bool)
	q := strings.ToLower(c.bodyStr("query"))
	var hits []*object
	if cc := l.col(colContacts, false); cc != nil {
		for _, ct := range cc.order {
			if len(ids) > 0 && !contains(anyStrings(ids), ct.id) {
				continue
			}
			tc := l.col(tasksCol(ct.id), false)
			if tc == nil {
				continue
			}
			for _, o := range tc.order {
				if byDone && o.data["completed"] != done {
					continue
				}
				if q != "" && !strings.Contains(lower(o.data["title"]), q) {
					continue
				}
				hits = append(hits, o)
			}
		}
	}
	skip, limit := intArg(c.body["skip"], 0), intArg(c.body["limit"], 25)
	if skip >= len(hits) {
		hits = nil
	} else {
		hits = hits[skip:min(skip+limit, len(hits))]
	}
	return http.StatusOK, listBody("tasks", rawArray(hits), nil)
}

func anyStrings(v []any) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		out = append(out, fmtAny(x))
	}
	return out
}
