package sim

import (
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/tidwall/gjson"
)

// gen describes how the generic handlers serve one operation over a
// collection of records. The response shapes come from the catalog: items at
// op.Items, the object at op.Object (reads) or op.Output (writes), totals at
// op.Paging.Total.
type gen struct {
	act     string // list, get, create, update, delete, noop
	col     string // collection; {param} is replaced by that input's value
	idParam string // input naming the record (get, update, delete)
	idField string // the record's id field (default "id")
	ids     string // id style: ghl (default, 20 characters), guid, hex
	app     string // time and id style: ghl, referralrock, referrizer
	created string // field stamped with the creation time
	updated string // field stamped with the update time
	// filters maps query inputs to record fields (gjson paths) that must
	// equal them (or contain them, for arrays) in lists.
	filters map[string]string
	match   func(c *call, o *object) bool // further list filter
	desc    bool                          // newest first
	sortBy  func(c *call) (desc bool)     // per-request order
	parent  *parentRef                    // a record that must exist
	company bool                          // stored at the agency level
	status  int                           // success status (default 200, 201 for POST creates)
	fields  []string                      // writable fields (nil: every body field)
	// defaults gives a new record's initial fields; mutate changes a record
	// after the body was applied; respond shapes the answer (default: the
	// object under the op's key, or result).
	defaults func(s *Server, l *location, now time.Time) map[string]any
	mutate   func(s *Server, c *call, d map[string]any) *apiError
	respond  func(c *call, o *object) any
	result   map[string]any // fixed body (delete, noop), merged into object bodies for writes
	event    string         // webhook event base name ("Opportunity" → OpportunityCreate/Update/Delete)
}

// parentRef names a record that must exist for the operation: the
// collection and the input holding its id.
type parentRef struct {
	col, input, what string
}

// expand fills {param} placeholders of a collection template.
func expand(tmpl string, c *call) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		b.WriteString(tmpl[:i])
		b.WriteString(c.input(tmpl[i+1 : i+j]))
		tmpl = tmpl[i+j+1:]
	}
}

// stampValue formats a time in the app's style.
func stampValue(app string, t time.Time) string {
	switch app {
	case "referralrock":
		return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
	}
	return isoTime(t)
}

// idFor returns a fresh id in the given style.
func (s *Server) idFor(style string) string {
	switch style {
	case "guid":
		s.rngMu.Lock()
		a, b := s.rng.Uint64(), s.rng.Uint64()
		s.rngMu.Unlock()
		h := hex.EncodeToString([]byte{byte(a >> 56), byte(a >> 48), byte(a >> 40), byte(a >> 32), byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a),
			byte(b >> 56), byte(b >> 48), byte(b >> 40), byte(b >> 32), byte(b >> 24), byte(b >> 16), byte(b >> 8), byte(b)})
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	case "hex":
		s.rngMu.Lock()
		a, b := s.rng.Uint64(), s.rng.Uint32()
		s.rngMu.Unlock()
		return strconv.FormatUint(a|1<<63, 16) + strconv.FormatUint(uint64(b)|1<<31, 16)
	}
	return s.newID()
}

func (g *gen) idKey() string {
	if g.idField == "" {
		return "id"
	}
	return g.idField
}

// store returns the location holding g's records for this call.
func (s *Server) store(c *call, g *gen) *location {
	if g.company {
		return s.ensureLocation(c.loc.company, c.loc.company)
	}
	return c.loc
}

// insert creates a record in col of l from fields (the caller holds l's
// write lock) and returns it.
func (s *Server) insert(l *location, g *gen, col string, now time.Time, fields map[string]any) *object {
	at := l.stamp(now)
	d := map[string]any{}
	if g.defaults != nil {
		d = g.defaults(s, l, at)
	}
	for k, v := range fields {
		d[k] = v
	}
	id, _ := d[g.idKey()].(string)
	if id == "" {
		id = s.idFor(g.ids)
		d[g.idKey()] = id
	}
	if g.created != "" {
		d[g.created] = stampValue(g.app, at)
	}
	if g.updated != "" {
		d[g.updated] = stampValue(g.app, at)
	}
	if !g.company && g.app == "ghl" {
		if _, ok := d["locationId"]; !ok {
			d["locationId"] = l.id
		}
	}
	o := newObject(id, at, d)
	l.col(col, true).put(o)
	return o
}

// bodyFields returns the fields of the body a write applies.
func (g *gen) bodyFields(c *call) map[string]any {
	out := map[string]any{}
	for k, v := range c.body {
		if g.fields != nil && !contains(g.fields, k) {
			continue
		}
		out[k] = v
	}
	return out
}

// genericHandler serves an operation from its gen entry, or derives one
// from the method and path for operations without an entry.
func genericHandler(r *route) handler {
	var g *gen
	for _, op := range r.ops {
		if x := gens[op.ID]; x != nil {
			g = x
			break
		}
	}
	if g == nil {
		g = deriveGen(r.op)
	}
	if g.app == "" {
		// gens is shared by every simulator: fill in a copy.
		own := *g
		own.app = r.op.App
		g = &own
	}
	op := r.op
	switch g.act {
	case "list":
		return func(s *Server, c *call) (int, any) { return s.genList(c, g, op) }
	case "get":
		return func(s *Server, c *call) (int, any) { return s.genGet(c, g, op) }
	case "create":
		return func(s *Server, c *call) (int, any) { return s.genCreate(c, g, op) }
	case "update":
		return func(s *Server, c *call) (int, any) { return s.genUpdate(c, g, op) }
	case "delete":
		return func(s *Server, c *call) (int, any) { return s.genDelete(c, g, op) }
	}
	return func(s *Server, c *call) (int, any) {
		if g.parent != nil {
			l := s.store(c, g)
			l.mu.RLock()
			e := s.checkParent(l, c, g)
			l.mu.RUnlock()
			if e != nil {
				return 0, e
			}
		}
		return g.okStatus(c), g.result
	}
}

// deriveGen guesses a gen from the operation's method and path: the last
// path parameter names the record, the path before it the collection.
func deriveGen(op *catalog.Operation) *gen {
	params := op.PathParams()
	g := &gen{col: strings.Trim(op.Path, "/")}
	if len(params) > 0 && strings.HasSuffix(strings.TrimSuffix(op.Path, "/"), "{"+params[len(params)-1]+"}") {
		g.idParam = params[len(params)-1]
		g.col = strings.TrimSuffix(strings.Trim(op.Path, "/"), "/{"+g.idParam+"}")
	}
	switch {
	case op.Method == http.MethodGet && op.Items != "":
		g.act = "list"
	case op.Method == http.MethodGet:
		g.act = "get"
	case op.Method == http.MethodPost:
		g.act = "create"
	case op.Method == http.MethodPut || op.Method == http.MethodPatch:
		g.act = "update"
	case op.Method == http.MethodDelete:
		g.act = "delete"
	}
	return g
}

func (g *gen) okStatus(c *call) int {
	if g.status != 0 {
		return g.status
	}
	if g.act == "create" && c.r.Method == http.MethodPost {
		return http.StatusCreated
	}
	return http.StatusOK
}

func notFoundErr(what string) *apiError {
	if what == "" {
		what = "Record"
	}
	return errf(http.StatusNotFound, what+" not found")
}

func (s *Server) checkParent(l *location, c *call, g *gen) *apiError {
	if g.parent == nil {
		return nil
	}
	col := l.col(g.parent.col, false)
	if col == nil || col.get(c.input(g.parent.input)) == nil {
		return notFoundErr(g.parent.what)
	}
	return nil
}

// objectBody shapes the answer of a read or write of o.
func (g *gen) objectBody(c *call, op *catalog.Operation, o *object) any {
	if g.respond != nil {
		return g.respond(c, o)
	}
	key := op.Object
	if op.Kind == catalog.KindAction {
		key = op.Output
	}
	raw := o.raw
	if key == "" || key == "@this" {
		return raw
	}
	if strings.HasPrefix(key, "0.") {
		return []byte("[" + string(wrapOne(key[2:], raw)) + "]")
	}
	b := wrapOne(key, raw)
	for k, v := range g.result {
		b = withField(b, k, v)
	}
	return b
}

// answer is the body of a create or update: the fixed result when the op
// declares no output, else the object. Callers hold the location's lock,
// since the object's fields change in place.
func (g *gen) answer(c *call, op *catalog.Operation, o *object) any {
	if g.respond == nil && g.result != nil && op.Output == "" {
		return g.result
	}
	return g.objectBody(c, op, o)
}

func (s *Server) genGet(c *call, g *gen, op *catalog.Operation) (int, any) {
	l := s.store(c, g)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if e := s.checkParent(l, c, g); e != nil {
		return 0, e
	}
	col := l.col(expand(g.col, c), false)
	var o *object
	if col != nil {
		o = col.get(c.input(g.idParam))
	}
	if o == nil {
		return 0, notFoundErr(whatOf(op))
	}
	return http.StatusOK, g.objectBody(c, op, o)
}

// whatOf names an operation's record for messages ("Opportunity").
func whatOf(op *catalog.Operation) string {
	parts := strings.Split(op.ID, ".")
	if len(parts) < 2 {
		return "Record"
	}
	w := parts[1]
	if strings.HasSuffix(w, "ies") {
		w = strings.TrimSuffix(w, "ies") + "y"
	} else {
		w = strings.TrimSuffix(w, "s")
	}
	return strings.ToUpper(w[:1]) + w[1:]
}

func (s *Server) genCreate(c *call, g *gen, op *catalog.Operation) (int, any) {
	l := s.store(c, g)
	l.mu.Lock()
	if e := s.checkParent(l, c, g); e != nil {
		l.mu.Unlock()
		return 0, e
	}
	fields := g.bodyFields(c)
	if g.mutate != nil {
		if e := g.mutate(s, c, fields); e != nil {
			l.mu.Unlock()
			return 0, e
		}
	}
	o := s.insert(l, g, expand(g.col, c), c.now, fields)
	raw, body := o.raw, g.answer(c, op, o)
	l.mu.Unlock()
	if g.event != "" {
		s.emitRaw(c.loc.id, g.event+"Create", raw)
	}
	return g.okStatus(c), body
}

func (s *Server) genUpdate(c *call, g *gen, op *catalog.Operation) (int, any) {
	l := s.store(c, g)
	l.mu.Lock()
	if e := s.checkParent(l, c, g); e != nil {
		l.mu.Unlock()
		return 0, e
	}
	col := l.col(expand(g.col, c), false)
	var o *object
	if col != nil {
		o = col.get(c.input(g.idParam))
	}
	if o == nil {
		l.mu.Unlock()
		return 0, notFoundErr(whatOf(op))
	}
	for k, v := range g.bodyFields(c) {
		if k == g.idKey() {
			continue
		}
		o.data[k] = v
	}
	if g.mutate != nil {
		if e := g.mutate(s, c, o.data); e != nil {
			o.encode()
			l.mu.Unlock()
			return 0, e
		}
	}
	if g.updated != "" {
		o.data[g.updated] = stampValue(g.app, c.now)
	}
	o.encode()
	raw, body := o.raw, g.answer(c, op, o)
	l.mu.Unlock()
	if g.event != "" {
		s.emitRaw(c.loc.id, g.event+"Update", raw)
	}
	return g.okStatus(c), body
}

func (s *Server) genDelete(c *call, g *gen, op *catalog.Operation) (int, any) {
	l := s.store(c, g)
	l.mu.Lock()
	if e := s.checkParent(l, c, g); e != nil {
		l.mu.Unlock()
		return 0, e
	}
	col := l.col(expand(g.col, c), false)
	var o *object
	if col != nil {
		o = col.remove(c.input(g.idParam))
	}
	l.mu.Unlock()
	if o == nil {
		return 0, notFoundErr(whatOf(op))
	}
	if g.event != "" {
		s.emitRaw(c.loc.id, g.event+"Delete", o.raw)
	}
	if g.respond != nil {
		return g.okStatus(c), g.respond(c, o)
	}
	res := g.result
	if res == nil {
		res = map[string]any{"succeded": true}
	}
	return g.okStatus(c), res
}

// matches applies the list filters of g to o.
func (g *gen) matches(c *call, o *object) bool {
	for param, field := range g.filters {
		want := c.query(param)
		if want == "" {
			continue
		}
		r := gjson.GetBytes(o.raw, field)
		if r.IsArray() {
			found := false
			for _, e := range r.Array() {
				if strings.EqualFold(e.String(), want) {
					found = true
				}
			}
			if !found {
				return false
			}
		} else if !strings.EqualFold(r.String(), want) {
			return false
		}
	}
	return g.match == nil || g.match(c, o)
}

func (s *Server) genList(c *call, g *gen, op *catalog.Operation) (int, any) {
	l := s.store(c, g)
	l.mu.RLock()
	if e := s.checkParent(l, c, g); e != nil {
		l.mu.RUnlock()
		return 0, e
	}
	var hits []*object
	if col := l.col(expand(g.col, c), false); col != nil {
		if len(g.filters) == 0 && g.match == nil {
			hits = col.order
		} else {
			for _, o := range col.order {
				if g.matches(c, o) {
					hits = append(hits, o)
				}
			}
		}
	}
	desc := g.desc
	if g.sortBy != nil {
		desc = g.sortBy(c)
	}
	if desc {
		rev := make([]*object, len(hits))
		for i, o := range hits {
			rev[len(hits)-1-i] = o
		}
		hits = rev
	}
	total := len(hits)
	offset, hasMore := 0, false
	if p := op.Paging; p != nil {
		limit := p.DefaultLimit
		if limit == 0 {
			limit = total
		}
		if v := c.query(p.Limit); p.Limit != "" && v != "" {
			limit = intArg(v, limit)
		}
		if p.MaxLimit > 0 && limit > p.MaxLimit {
			l.mu.RUnlock()
			return 0, unprocessable(p.Limit + " must not be greater than " + strconv.Itoa(p.MaxLimit))
		}
		switch p.Style {
		case catalog.PagingOffset:
			offset = intArg(c.query(p.Offset), 0)
		case catalog.PagingPage:
			offset = (intArg(c.query(p.Page), p.PageBase) - p.PageBase) * limit
		}
		if offset < 0 || limit < 0 {
			l.mu.RUnlock()
			return 0, unprocessable("paging values must not be negative")
		}
		if p.Style != catalog.PagingNone && p.Style != "" {
			end := min(offset+limit, total)
			if offset >= total {
				hits = nil
			} else {
				hits = hits[offset:end]
			}
			hasMore = end < total
		}
	}
	if op.Items == "" {
		// A list the catalog reads as one object (the spec documents one
		// record): the record at the offset.
		var raw []byte
		if len(hits) > 0 {
			raw = hits[0].raw
		}
		l.mu.RUnlock()
		if raw == nil {
			return 0, notFoundErr(whatOf(op))
		}
		return http.StatusOK, raw
	}
	items := rawArray(hits)
	l.mu.RUnlock()
	extra := map[string]any{}
	if p := op.Paging; p != nil {
		if p.Total != "" {
			setPath(extra, p.Total, total)
		}
		if p.HasMore != "" {
			setPath(extra, p.HasMore, hasMore)
		}
	}
	if g.app == "referralrock" {
		extra["offset"] = offset
		extra["message"] = nil
	}
	if g.app == "referrizer" {
		c.w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	return http.StatusOK, listBody(op.Items, items, extra)
}

// setPath sets a dotted path in m.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, _ := m[p].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

// sortedCopy returns objs ordered by less.
func sortedCopy(objs []*object, less func(a, b *object) bool) []*object {
	out := append([]*object(nil), objs...)
	sort.SliceStable(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}
