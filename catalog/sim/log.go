package sim

import (
	"strconv"
	"sync"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
)

// Request is one request the simulator answered.
type Request struct {
	Op       string // operation id (the first of those sharing the route)
	App      string
	Location string
	Method   string
	Path     string
	Query    string // the raw query string, without "?"
	Status   int
	Time     time.Time
	Body     []byte // the request body of writes (POST, PUT, PATCH, DELETE)
	// Remaining is the X-RateLimit-Remaining answered (-1 when none was).
	Remaining int
}

// Write is one request to an action operation (a write: a search sent as a
// POST is a read) that passed auth and rate limiting, with its body, as the
// API received it.
type Write struct {
	Op       string
	Ops      []string // every operation id of the route
	Location string
	Method   string
	Path     string
	Status   int
	Time     time.Time
	Body     []byte
}

// recorder keeps the request and write logs and the counters.
type recorder struct {
	limit    int
	mu       sync.Mutex
	requests []Request
	writes   []Write
	counts   map[countKey]int
	n429     int
}

type countKey struct{ op, loc string }

func newRecorder(limit int) *recorder {
	return &recorder{limit: limit, counts: map[countKey]int{}}
}

func (r *recorder) record(c *call, loc string, status int) {
	req := Request{Op: c.rt.op.ID, App: c.rt.op.App, Location: loc, Method: c.r.Method, Path: c.r.URL.Path,
		Query: c.r.URL.RawQuery, Status: status, Time: c.now, Remaining: -1}
	if v := c.w.Header()["X-Ratelimit-Remaining"]; len(v) == 1 {
		req.Remaining, _ = strconv.Atoi(v[0])
	}
	write := c.r.Method != "GET" && c.rt.op.Kind == catalog.KindAction && status != 401 && status != 403 && status != 429
	if c.r.Method != "GET" {
		req.Body = c.raw
	}
	r.mu.Lock()
	r.appendRequest(req)
	r.counts[countKey{req.Op, loc}]++
	if write {
		if len(r.writes) >= r.limit {
			n := copy(r.writes, r.writes[r.limit/10:])
			r.writes = r.writes[:n]
		}
		ops := make([]string, len(c.rt.ops))
		for i, op := range c.rt.ops {
			ops[i] = op.ID
		}
		r.writes = append(r.writes, Write{Op: req.Op, Ops: ops, Location: loc, Method: req.Method, Path: req.Path,
			Status: status, Time: c.now, Body: c.raw})
	}
	r.mu.Unlock()
}

// appendRequest adds req to the log, dropping the oldest tenth when it is
// full. The caller holds r.mu.
func (r *recorder) appendRequest(req Request) {
	if len(r.requests) >= r.limit {
		n := copy(r.requests, r.requests[r.limit/10:])
		r.requests = r.requests[:n]
	}
	r.requests = append(r.requests, req)
}

// recordOAuth logs a request to an OAuth endpoint, counted under its Op
// ("oauth.token", "oauth.locationToken", ...) with no location and without
// its body, which carries secrets.
func (r *recorder) recordOAuth(req Request) {
	r.mu.Lock()
	r.appendRequest(req)
	r.counts[countKey{req.Op, ""}]++
	r.mu.Unlock()
}

func (r *recorder) count429() {
	r.mu.Lock()
	r.n429++
	r.mu.Unlock()
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	return append([]Request(nil), s.logs.requests...)
}

// Writes returns the writes received for an operation (every write when
// opID is ""), oldest first. Operations that share a route (Update Referral
// and Update Referral Status) share their writes.
func (s *Server) Writes(opID string) []Write {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	var out []Write
	for _, w := range s.logs.writes {
		if opID == "" || w.Op == opID || contains(w.Ops, opID) {
			out = append(out, w)
		}
	}
	return out
}

// RequestCount returns how many requests an operation received for a
// location ("" location: summed over all).
func (s *Server) RequestCount(opID, loc string) int {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	if loc != "" {
		return s.logs.counts[countKey{opID, loc}]
	}
	n := 0
	for k, v := range s.logs.counts {
		if k.op == opID {
			n += v
		}
	}
	return n
}

// TooManyRequests returns how many 429s the server has sent.
func (s *Server) TooManyRequests() int {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	return s.logs.n429
}

// ResetLogs empties the request and write logs and the counters.
func (s *Server) ResetLogs() {
	s.logs.mu.Lock()
	s.logs.requests, s.logs.writes, s.logs.counts, s.logs.n429 = nil, nil, map[countKey]int{}, 0
	s.logs.mu.Unlock()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
