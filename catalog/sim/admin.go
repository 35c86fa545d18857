package sim

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// FaultCounts says how many requests each fault hit.
type FaultCounts struct {
	Resets    int64 `json:"resets"`
	Timeouts  int64 `json:"timeouts"`
	Errors5xx int64 `json:"errors5xx"`
	Forced429 int64 `json:"forced429"`
	Delayed   int64 `json:"delayed"`
}

type faultCounters struct {
	resets, timeouts, errors, forced, delayed atomic.Int64
}

// FaultCounts returns the fault counters.
func (s *Server) FaultCounts() FaultCounts {
	f := &s.faults.counts
	return FaultCounts{Resets: f.resets.Load(), Timeouts: f.timeouts.Load(), Errors5xx: f.errors.Load(),
		Forced429: f.forced.Load(), Delayed: f.delayed.Load()}
}

// roll returns a uniform number in [0, 1) and a jitter in [0, j).
func (fs *faultState) roll(j time.Duration) (float64, time.Duration) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	x := fs.rng.Float64()
	var d time.Duration
	if j > 0 {
		d = time.Duration(fs.rng.Int64N(int64(j)))
	}
	return x, d
}

// injectFault applies the fault injection to a request; it reports whether
// the request was answered (or dropped) by a fault.
func (s *Server) injectFault(c *call) bool {
	fs := s.faults
	fs.mu.Lock()
	f := fs.f
	fs.mu.Unlock()
	x, jitter := fs.roll(f.Jitter)
	if d := f.Latency + jitter; d > 0 {
		fs.counts.delayed.Add(1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
			return true
		}
	}
	switch {
	case x < f.Reset:
		fs.counts.resets.Add(1)
		s.logs.record(c, "", 0)
		dropConn(c.w)
		return true
	case x < f.Reset+f.Timeout:
		fs.counts.timeouts.Add(1)
		s.logs.record(c, "", 0)
		wait := f.TimeoutAfter
		if wait <= 0 {
			wait = time.Minute
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
		}
		dropConn(c.w)
		return true
	case x < f.Reset+f.Timeout+f.Error5xx:
		fs.counts.errors.Add(1)
		codes := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
		st := codes[int(x*1e6)%len(codes)]
		s.logs.record(c, "", st)
		writeJSON(c.w, st, errorBody(c.rt.op.App, errf(st, http.StatusText(st))))
		return true
	}
	return false
}

// dropConn closes the connection without an answer.
func dropConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// faultsJSON is the admin endpoint's form of Faults, durations as text.
type faultsJSON struct {
	Latency      string  `json:"latency,omitempty"`
	Jitter       string  `json:"jitter,omitempty"`
	Error5xx     float64 `json:"error5xx,omitempty"`
	Timeout      float64 `json:"timeout,omitempty"`
	TimeoutAfter string  `json:"timeoutAfter,omitempty"`
	Reset        float64 `json:"reset,omitempty"`
	Burst429     int     `json:"burst429,omitempty"`
}

func (f Faults) toJSON() faultsJSON {
	d := func(x time.Duration) string {
		if x == 0 {
			return ""
		}
		return x.String()
	}
	return faultsJSON{Latency: d(f.Latency), Jitter: d(f.Jitter), Error5xx: f.Error5xx, Timeout: f.Timeout,
		TimeoutAfter: d(f.TimeoutAfter), Reset: f.Reset, Burst429: f.Burst429}
}

func (j faultsJSON) faults() (Faults, error) {
	var f Faults
	var err error
	for _, p := range []struct {
		s string
		d *time.Duration
	}{{j.Latency, &f.Latency}, {j.Jitter, &f.Jitter}, {j.TimeoutAfter, &f.TimeoutAfter}} {
		if p.s != "" {
			if *p.d, err = time.ParseDuration(p.s); err != nil {
				return f, err
			}
		}
	}
	f.Error5xx, f.Timeout, f.Reset, f.Burst429 = j.Error5xx, j.Timeout, j.Reset, j.Burst429
	return f, nil
}

// AdminEndpoint is one of the simulator's own endpoints under /_sim/ (no
// auth; the simulator is meant for loopback).
type AdminEndpoint struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Description string `json:"description"`
}

// AdminEndpoints lists the simulator's own endpoints; GET /_sim/ serves it
// and 'ghlflow sim --help' prints it.
var AdminEndpoints = []AdminEndpoint{
	{"GET", "/_sim/", "this list"},
	{"GET", "/_sim/requests", "the request log, query strings included (?op=ID&location=ID)"},
	{"GET", "/_sim/writes", "the writes received by action operations, with their bodies (?op=ID&location=ID)"},
	{"GET", "/_sim/stats", "requests per operation and location, 429s sent, faults injected"},
	{"POST", "/_sim/reset", "empty the logs and the rate-limit counters"},
	{"POST", "/_sim/tokens", `issue a credential: {"app","locationId","companyId","scopes","ttl","private"}`},
	{"POST", "/_sim/revoke", `revoke an access token: {"token": ...}`},
	{"POST", "/_sim/locations", `add a location: {"id": ...} ("" = a fresh id)`},
	{"POST", "/_sim/seed", `seed N objects of each kind per location: {"n": N}`},
	{"GET", "/_sim/faults", "the fault injection in force and its counts"},
	{"POST", "/_sim/faults", "replace the fault injection (JSON, or the --faults text form)"},
	{"POST", "/_sim/webhooks", `register a webhook receiver: {"url": ...}`},
	{"GET", "/_sim/deliveries", "the webhook deliveries made"},
	{"GET", "/_sim/webhook-public-key", "the Ed25519 key webhooks are signed with, PEM (?type=rsa: the legacy RSA key)"},
}

// serveAdmin answers the endpoints of AdminEndpoints.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_sim")
	var in map[string]any
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if path == "/faults" {
			s.adminSetFaults(w, r, b)
			return
		}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &in); err != nil {
				writeError(w, http.StatusBadRequest, "invalid JSON body")
				return
			}
		}
	}
	switch r.Method + " " + path {
	case "GET /":
		writeJSON(w, http.StatusOK, AdminEndpoints)
	case "GET /webhook-public-key":
		key := s.WebhookPublicKeyPEM()
		if r.URL.Query().Get("type") == "rsa" {
			key = s.WebhookRSAPublicKeyPEM()
		}
		writeJSON(w, http.StatusOK, rawBody{"application/x-pem-file", []byte(key)})
	case "POST /webhooks":
		if strArg(in, "url") == "" {
			writeError(w, http.StatusBadRequest, "url is required")
			return
		}
		s.AddWebhook(strArg(in, "url"))
		writeJSON(w, http.StatusCreated, map[string]any{"url": strArg(in, "url")})
	case "GET /deliveries":
		out := []map[string]any{}
		for _, d := range s.Deliveries() {
			out = append(out, map[string]any{"url": d.URL, "type": d.Type, "location": d.Location, "status": d.Status,
				"attempts": d.Attempts, "time": d.Time, "body": json.RawMessage(d.Body)})
		}
		writeJSON(w, http.StatusOK, out)
	case "GET /faults":
		writeJSON(w, http.StatusOK, map[string]any{"faults": s.CurrentFaults().toJSON(), "counts": s.FaultCounts()})
	case "POST /revoke":
		if !s.RevokeToken(strArg(in, "token")) {
			writeError(w, http.StatusNotFound, "unknown token")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
	case "POST /tokens":
		s.adminIssueToken(w, in)
	case "POST /locations":
		id := strArg(in, "id")
		if id == "" {
			id = s.NewID()
		}
		s.AddLocation(id)
		writeJSON(w, http.StatusCreated, map[string]any{"id": id})
	case "POST /seed":
		n := intArg(in["n"], 10)
		s.Seed(n)
		writeJSON(w, http.StatusOK, map[string]any{"seeded": n})
	case "GET /requests":
		s.adminRequests(w, r)
	case "GET /writes":
		s.adminWrites(w, r)
	case "GET /stats":
		s.adminStats(w)
	case "POST /reset":
		s.ResetLogs()
		s.ResetRateLimits()
		writeJSON(w, http.StatusOK, map[string]any{"reset": true})
	default:
		notFound(w, r)
	}
}

// adminIssueToken answers POST /_sim/tokens: a token issued as in says.
func (s *Server) adminIssueToken(w http.ResponseWriter, in map[string]any) {
	spec := TokenSpec{App: strArg(in, "app"), LocationID: strArg(in, "locationId"), CompanyID: strArg(in, "companyId"), Private: in["private"] == true}
	if list, ok := in["scopes"].([]any); ok {
		spec.Scopes = []string{}
		for _, x := range list {
			spec.Scopes = append(spec.Scopes, fmtAny(x))
		}
	}
	if t := strArg(in, "ttl"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil {
			writeError(w, http.StatusBadRequest, "ttl: "+err.Error())
			return
		}
		spec.TTL = d
	}
	t := s.IssueToken(spec)
	writeJSON(w, http.StatusCreated, map[string]any{"app": t.App, "access_token": t.AccessToken,
		"refresh_token": t.RefreshToken, "expires_at": t.ExpiresAt, "locationId": t.LocationID,
		"companyId": t.CompanyID, "username": t.Username, "password": t.Password, "authorization": t.Authorization()})
}

// adminRequests answers GET /_sim/requests: the request log, by op and
// location.
func (s *Server) adminRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []map[string]any{}
	for _, x := range s.Requests() {
		if (q.Get("op") == "" || q.Get("op") == x.Op) && (q.Get("location") == "" || q.Get("location") == x.Location) {
			out = append(out, map[string]any{"op": x.Op, "app": x.App, "location": x.Location, "method": x.Method,
				"path": x.Path, "query": x.Query, "status": x.Status, "time": x.Time, "body": string(x.Body)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminWrites answers GET /_sim/writes: the writes received, by op and
// location.
func (s *Server) adminWrites(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []map[string]any{}
	for _, x := range s.Writes(q.Get("op")) {
		if q.Get("location") == "" || q.Get("location") == x.Location {
			out = append(out, map[string]any{"op": x.Op, "location": x.Location, "method": x.Method, "path": x.Path,
				"status": x.Status, "time": x.Time, "body": string(x.Body)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminStats answers GET /_sim/stats: requests by op and location, 429s
// and fault counts.
func (s *Server) adminStats(w http.ResponseWriter) {
	s.logs.mu.Lock()
	per := map[string]map[string]int{}
	for k, v := range s.logs.counts {
		if per[k.op] == nil {
			per[k.op] = map[string]int{}
		}
		per[k.op][k.loc] = v
	}
	n429 := s.logs.n429
	s.logs.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"requests": per, "tooManyRequests": n429, "faults": s.FaultCounts()})
}

// strArg is in[k] when it is a string, else "".
func strArg(in map[string]any, k string) string { v, _ := in[k].(string); return v }

func (s *Server) adminSetFaults(w http.ResponseWriter, r *http.Request, b []byte) {
	var f Faults
	var err error
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
		var j faultsJSON
		if err = json.Unmarshal(b, &j); err == nil {
			f, err = j.faults()
		}
	} else {
		f, err = ParseFaults(t)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "faults: "+err.Error())
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, map[string]any{"faults": f.toJSON(), "burst429": strconv.Itoa(f.Burst429)})
}
