package sim

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// searchMaxRecords is how deep page+pageLimit may reach in Search Contacts.
const searchMaxRecords = 10000

// fieldValue reads a record field for filtering and sorting; dates become
// epoch milliseconds.
func fieldValue(o *object, field string) any {
	if field == "id" {
		return o.id
	}
	v := o.data[field]
	if s, ok := v.(string); ok && (strings.HasPrefix(field, "date") || strings.HasSuffix(field, "At")) {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return float64(t.UnixMilli())
		}
	}
	return v
}

// toNumber reads a filter operand as a number: numbers, numeric strings and
// ISO dates (as epoch ms).
func toNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return f, true
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return float64(t.UnixMilli()), true
			}
		}
	}
	return 0, false
}

func lower(v any) string {
	switch x := v.(type) {
	case string:
		return strings.ToLower(x)
	case nil:
		return ""
	}
	return strings.ToLower(fmt.Sprint(v))
}

// matchFilter evaluates one search filter or filter group against o.
func matchFilter(o *object, f map[string]any) (bool, *apiError) {
	if g, ok := f["group"].(string); ok {
		subs, _ := f["filters"].([]any)
		or := strings.EqualFold(g, "OR")
		for _, sf := range subs {
			m, _ := sf.(map[string]any)
			ok, e := matchFilter(o, m)
			if e != nil {
				return false, e
			}
			if or && ok {
				return true, nil
			}
			if !or && !ok {
				return false, nil
			}
		}
		return !or || len(subs) == 0, nil
	}
	field, _ := f["field"].(string)
	op, _ := f["operator"].(string)
	if field == "" || op == "" {
		return false, unprocessable("filters must have field and operator")
	}
	val := f["value"]
	have := fieldValue(o, field)
	switch op {
	case "eq", "not_eq":
		eq := false
		if list, ok := have.([]any); ok {
			for _, e := range list {
				if lower(e) == lower(val) {
					eq = true
				}
			}
		} else if hn, ok := toNumber(have); ok && isDateField(field) {
			vn, _ := toNumber(val)
			eq = hn == vn
		} else {
			eq = lower(have) == lower(val)
		}
		return eq == (op == "eq"), nil
	case "contains", "not_contains":
		in := false
		if list, ok := have.([]any); ok {
			for _, e := range list {
				if strings.Contains(lower(e), lower(val)) {
					in = true
				}
			}
		} else {
			in = strings.Contains(lower(have), lower(val))
		}
		return in == (op == "contains"), nil
	case "exists", "not_exists":
		ex := have != nil && have != "" && !isEmptyList(have)
		return ex == (op == "exists"), nil
	case "range":
		rng, _ := val.(map[string]any)
		if rng == nil {
			return false, unprocessable("range filters take a value object with gt, gte, lt or lte")
		}
		hn, ok := toNumber(have)
		if !ok {
			return false, nil
		}
		for k, bound := range rng {
			bn, ok := toNumber(bound)
			if !ok {
				return false, unprocessable("range value " + k + " must be a number or a date")
			}
			switch k {
			case "gt":
				if !(hn > bn) {
					return false, nil
				}
			case "gte":
				if !(hn >= bn) {
					return false, nil
				}
			case "lt":
				if !(hn < bn) {
					return false, nil
				}
			case "lte":
				if !(hn <= bn) {
					return false, nil
				}
			}
		}
		return true, nil
	}
	return false, unprocessable("operator must be one of eq, not_eq, contains, not_contains, exists, not_exists, range")
}

func isDateField(f string) bool { return strings.HasPrefix(f, "date") || strings.HasSuffix(f, "At") }

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}

// matchQuery is the free-text search over names, email, phone and company.
func matchQuery(o *object, q string) bool {
	if q == "" {
		return true
	}
	q = strings.ToLower(q)
	for _, k := range []string{"fullNameLowerCase", "email", "phone", "companyName", "firstNameLowerCase", "lastNameLowerCase"} {
		if strings.Contains(lower(o.data[k]), q) {
			return true
		}
	}
	return false
}

// compareValues orders two field values (numbers, then strings).
func compareValues(a, b any) int {
	an, aok := toNumber(a)
	bn, bok := toNumber(b)
	if aok && bok {
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	}
	return strings.Compare(lower(a), lower(b))
}

type sortKey struct {
	field string
	desc  bool
}

func parseSort(v any) ([]sortKey, *apiError) {
	list, _ := v.([]any)
	var keys []sortKey
	for _, e := range list {
		m, _ := e.(map[string]any)
		f, _ := m["field"].(string)
		d, _ := m["direction"].(string)
		if f == "" {
			return nil, unprocessable("sort field should not be empty")
		}
		if d != "" && d != "asc" && d != "desc" {
			return nil, unprocessable("sort direction must be one of the following values: asc, desc")
		}
		keys = append(keys, sortKey{f, d == "desc"})
	}
	if len(keys) == 0 {
		keys = []sortKey{{"dateAdded", false}}
	}
	return keys, nil
}

// cmpObjects orders by the sort keys, then by id.
func cmpObjects(a, b *object, keys []sortKey) int {
	for _, k := range keys {
		c := compareValues(fieldValue(a, k.field), fieldValue(b, k.field))
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(a.id, b.id)
}

// cmpCursor orders an object against a searchAfter cursor [v1, ..., id].
func cmpCursor(o *object, cur []any, keys []sortKey) int {
	for i, k := range keys {
		if i >= len(cur)-1 {
			break
		}
		c := compareValues(fieldValue(o, k.field), cur[i])
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	id, _ := cur[len(cur)-1].(string)
	return strings.Compare(o.id, id)
}

// hSearchContacts is POST /contacts/search: filters, query, sort, and either
// page+pageLimit or a searchAfter cursor. Each contact carries its own
// searchAfter cursor; the body has contacts, total and traceId.
func hSearchContacts(s *Server, c *call) (int, any) {
	limit := intArg(c.body["pageLimit"], 0)
	if limit < 1 || limit > 500 {
		return 0, unprocessable("pageLimit must not be greater than 500", "pageLimit must not be less than 1")
	}
	keys, e := parseSort(c.body["sort"])
	if e != nil {
		return 0, e
	}
	filters, _ := c.body["filters"].([]any)
	q := c.bodyStr("query")
	after, hasAfter := c.body["searchAfter"].([]any)
	page := intArg(c.body["page"], 1)
	if hasAfter && c.body["page"] != nil {
		return 0, errf(http.StatusBadRequest, "page and searchAfter cannot be used together")
	}
	if hasAfter && len(after) < 2 {
		return 0, unprocessable("searchAfter must be [sortValue, id]")
	}
	if page < 1 {
		return 0, unprocessable("page must not be less than 1")
	}
	if !hasAfter && page*limit > searchMaxRecords {
		return 0, errf(http.StatusBadRequest, "page and pageLimit can reach at most 10000 records; use searchAfter")
	}
	l := c.loc
	// The read lock is held until the page is rendered: sorting and the
	// searchAfter values read the records, which writers change in place.
	l.mu.RLock()
	defer l.mu.RUnlock()
	var hits []*object
	if col := l.col(colContacts, false); col != nil {
		for _, o := range col.order {
			if !matchQuery(o, q) {
				continue
			}
			ok := true
			for _, f := range filters {
				m, _ := f.(map[string]any)
				if m == nil {
					return 0, unprocessable("each filter must be an object")
				}
				match, e := matchFilter(o, m)
				if e != nil {
					return 0, e
				}
				if !match {
					ok = false
					break
				}
			}
			if ok {
				hits = append(hits, o)
			}
		}
	}
	if !(len(keys) == 1 && keys[0].field == "dateAdded" && !keys[0].desc) {
		sort.SliceStable(hits, func(i, j int) bool { return cmpObjects(hits[i], hits[j], keys) < 0 })
	}
	total := len(hits)
	var pageItems []*object
	if hasAfter {
		i := sort.Search(len(hits), func(i int) bool { return cmpCursor(hits[i], after, keys) > 0 })
		pageItems = hits[i:min(i+limit, len(hits))]
	} else {
		start := (page - 1) * limit
		if start < len(hits) {
			pageItems = hits[start:min(start+limit, len(hits))]
		}
	}
	b := make([]byte, 0, 64+len(pageItems)*600)
	b = append(b, `{"contacts":[`...)
	for i, o := range pageItems {
		if i > 0 {
			b = append(b, ',')
		}
		cur := make([]any, 0, len(keys)+1)
		for _, k := range keys {
			cur = append(cur, fieldValue(o, k.field))
		}
		cur = append(cur, o.id)
		b = append(b, withField(o.raw, "searchAfter", cur)...)
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"traceId":"`...)
	b = append(b, traceID()...)
	b = append(b, `"}`...)
	return http.StatusOK, b
}

// hListContacts is the deprecated GET /contacts/: limit (default 20, at
// most 100), startAfter (epoch ms) and startAfterId walk the contacts in
// order of creation; meta carries the cursor of the next page.
func hListContacts(s *Server, c *call) (int, any) {
	limit := intArg(c.query("limit"), 20)
	if limit < 1 || limit > 100 {
		return 0, unprocessable("limit must not be greater than 100", "limit must not be less than 1")
	}
	var sa int64 = -1
	if v := c.query("startAfter"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, unprocessable("startAfter must be a number")
		}
		sa = n
	}
	sid := c.query("startAfterId")
	q := c.query("query")
	l := c.loc
	l.mu.RLock()
	col := l.col(colContacts, false)
	var items []*object
	total := 0
	if col != nil {
		total = col.len()
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
		for i := start; i < len(col.order) && len(items) < limit; i++ {
			if matchQuery(col.order[i], q) {
				items = append(items, col.order[i])
			}
		}
	}
	// The hot path of list benchmarks: one buffer, no reflection.
	n := 128
	for _, o := range items {
		n += len(o.raw) + 1
	}
	b := make([]byte, 0, n+256)
	b = append(b, `{"contacts":[`...)
	for i, o := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, o.raw...)
	}
	l.mu.RUnlock()
	b = append(b, `],"count":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"meta":{"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	if k := len(items); k > 0 {
		last := items[k-1]
		b = append(b, `,"startAfterId":`...)
		b = strconv.AppendQuote(b, last.id)
		b = append(b, `,"startAfter":`...)
		b = strconv.AppendInt(b, last.created, 10)
		if k == limit {
			v := url.Values{}
			v.Set("locationId", l.id)
			v.Set("limit", strconv.Itoa(limit))
			v.Set("startAfter", strconv.FormatInt(last.created, 10))
			v.Set("startAfterId", last.id)
			b = append(b, `,"nextPageUrl":`...)
			b = strconv.AppendQuote(b, "http://"+c.r.Host+"/contacts/?"+v.Encode())
		}
	}
	b = append(b, `},"traceId":"`...)
	b = append(b, traceID()...)
	b = append(b, `"}`...)
	return http.StatusOK, b
}

// hDuplicate is GET /contacts/search/duplicate: {contact: {...}} or
// {contact: null}.
func hDuplicate(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.RLock()
	o := findDuplicate(l.col(colContacts, false), c.query("email"), c.query("number"))
	var raw []byte
	if o != nil {
		raw = o.raw
	}
	l.mu.RUnlock()
	if raw == nil {
		return http.StatusOK, []byte(`{"contact":null}`)
	}
	return http.StatusOK, wrapOne("contact", raw)
}

// hContactsByBusiness is GET /contacts/business/{businessId} with string
// limit and skip.
func hContactsByBusiness(s *Server, c *call) (int, any) {
	bid := c.param("businessId")
	limit := intArg(c.query("limit"), 25)
	skip := intArg(c.query("skip"), 0)
	q := c.query("query")
	l := c.loc
	l.mu.RLock()
	var hits []*object
	if col := l.col(colContacts, false); col != nil {
		for _, o := range col.order {
			if b, _ := o.data["businessId"].(string); b == bid && matchQuery(o, q) {
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
	return http.StatusOK, listBody("contacts", raw, map[string]any{"count": total})
}

// hBulkBusiness is POST /contacts/bulk/business: set (or clear, with a null
// businessId) the business of many contacts.
func hBulkBusiness(s *Server, c *call) (int, any) {
	ids, _ := c.body["ids"].([]any)
	bid := c.body["businessId"]
	l := c.loc
	done := []any{}
	l.mu.Lock()
	col := l.col(colContacts, true)
	for _, v := range ids {
		id, _ := v.(string)
		if o := col.get(id); o != nil {
			if bid == nil {
				delete(o.data, "businessId")
			} else {
				o.data["businessId"] = bid
			}
			o.data["dateUpdated"] = isoTime(c.now)
			o.encode()
			done = append(done, id)
		}
	}
	l.mu.Unlock()
	return http.StatusOK, map[string]any{"success": true, "ids": done}
}
