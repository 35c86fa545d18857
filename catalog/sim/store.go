package sim

import (
	"encoding/json"
	"sort"
	"sync"
	"time"
)

// timeFormat is GHL's usual timestamp form: ISO 8601 in UTC with
// milliseconds ("2021-07-02T05:18:26.704Z").
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func isoTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// object is one stored record. data is the record as the API returns it;
// raw is its JSON encoding, kept current by every write so that lists are
// served by concatenation.
type object struct {
	id      string
	data    map[string]any
	raw     []byte
	created int64 // unix ms, the collection's sort key
}

// encode refreshes raw after data changed.
func (o *object) encode() {
	b, err := json.Marshal(o.data)
	if err != nil {
		b = []byte(`{}`)
	}
	o.raw = b
}

// clone returns a deep copy of the record's data, safe to hand out.
func (o *object) clone() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(o.raw, &m)
	return m
}

// collection is a set of records kept in a stable order: by creation time,
// then id. Paging walks this order, so a cursor resumes exactly after the
// last item it saw and items added later land at the end.
type collection struct {
	byID  map[string]*object
	order []*object
}

func newCollection() *collection { return &collection{byID: map[string]*object{}} }

func before(a, b *object) bool {
	if a.created != b.created {
		return a.created < b.created
	}
	return a.id < b.id
}

// put inserts o, or replaces the record with its id in place.
func (c *collection) put(o *object) {
	if old := c.byID[o.id]; old != nil {
		o.created = old.created
		c.byID[o.id] = o
		i := c.index(old)
		c.order[i] = o
		return
	}
	c.byID[o.id] = o
	i := sort.Search(len(c.order), func(i int) bool { return before(o, c.order[i]) })
	c.order = append(c.order, nil)
	copy(c.order[i+1:], c.order[i:])
	c.order[i] = o
}

func (c *collection) index(o *object) int {
	i := sort.Search(len(c.order), func(i int) bool { return !before(c.order[i], o) })
	return i
}

func (c *collection) get(id string) *object { return c.byID[id] }

func (c *collection) remove(id string) *object {
	o := c.byID[id]
	if o == nil {
		return nil
	}
	delete(c.byID, id)
	i := c.index(o)
	c.order = append(c.order[:i], c.order[i+1:]...)
	return o
}

func (c *collection) len() int { return len(c.order) }

// location is the state of one GHL sub-account (or one referral-app account,
// or an agency's own records, under the company id).
type location struct {
	id        string
	company   string
	mu        sync.RWMutex
	cols      map[string]*collection
	info      map[string]any // the location record itself
	lastStamp int64
}

func newLocation(id, company string) *location {
	return &location{id: id, company: company, cols: map[string]*collection{}}
}

// col returns the named collection, creating it when create is set (the
// caller holds the write lock then); nil when absent and not created.
func (l *location) col(name string, create bool) *collection {
	c := l.cols[name]
	if c == nil && create {
		c = newCollection()
		l.cols[name] = c
	}
	return c
}

// newObject builds a record from data with the given id and creation time and
// encodes it.
func newObject(id string, created time.Time, data map[string]any) *object {
	o := &object{id: id, data: data, created: created.UnixMilli()}
	o.encode()
	return o
}

// idAlphabet is the character set of GHL ids.
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newID returns a 20-character id like GHL's ("lJpzYrWdpkC2hX6t2yue").
func (s *Server) newID() string {
	var b [20]byte
	s.rngMu.Lock()
	for i := range b {
		b[i] = idAlphabet[s.rng.IntN(len(idAlphabet))]
	}
	s.rngMu.Unlock()
	return string(b[:])
}

// randN returns a pseudo-random int in [0, n) from the seeded source.
func (s *Server) randN(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// loc returns the location with the given id, or nil.
func (s *Server) loc(id string) *location {
	s.mu.RLock()
	l := s.locations[id]
	s.mu.RUnlock()
	return l
}

// ensureLocation returns the location, creating it under company when new.
func (s *Server) ensureLocation(id, company string) *location {
	if l := s.loc(id); l != nil {
		return l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.locations[id]; l != nil {
		return l
	}
	if company == "" {
		company = s.cfg.CompanyID
	}
	l := newLocation(id, company)
	l.info = map[string]any{
		"id": id, "companyId": company, "name": "Location " + id, "email": "owner@" + id + ".example",
		"phone": "+15550100000", "address": "1 Main St", "city": "Springfield", "state": "IL",
		"country": "US", "postalCode": "62701", "website": "https://" + id + ".example", "timezone": "America/Chicago",
		"settings": map[string]any{"allowDuplicateContact": false, "allowDuplicateOpportunity": false,
			"allowFacebookNameMerge": false, "disableContactTimezone": false},
		"social": map[string]any{},
	}
	s.locations[id] = l
	if id != company {
		s.locOrder = append(s.locOrder, id)
	}
	return l
}

// AddLocation creates a location (sub-account) of the default company; it
// is a no-op when the location exists.
func (s *Server) AddLocation(id string) { s.ensureLocation(id, s.cfg.CompanyID) }

// Locations returns the ids of every location, in order of creation.
func (s *Server) Locations() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string(nil), s.locOrder...)
}

// stamp returns a creation time for a new record of l: now, or one
// millisecond after the previous stamp, so that records are created in a
// strict order and cursors over (time, id) never skip one. The caller holds
// l's write lock.
func (l *location) stamp(now time.Time) time.Time {
	ms := now.UnixMilli()
	if ms <= l.lastStamp {
		ms = l.lastStamp + 1
	}
	l.lastStamp = ms
	return time.UnixMilli(ms).UTC()
}

// NewID returns a fresh 20-character GHL-like id from the seeded source.
func (s *Server) NewID() string { return s.newID() }
