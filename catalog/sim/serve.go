package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// call is one request being served: the matched route, its parameters, the
// caller's token and location, and the parsed body.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	rt     *route
	params [maxParams]string
	tok    *token
	loc    *location
	q      url.Values
	body   map[string]any // the JSON body (the first element for array bodies)
	raw    []byte
	now    time.Time
}

// param returns a path parameter by name.
func (c *call) param(name string) string {
	for i, n := range c.rt.params {
		if n == name {
			return c.params[i]
		}
	}
	return ""
}

// query returns a query parameter.
func (c *call) query(name string) string {
	if c.q == nil {
		c.q = c.r.URL.Query()
	}
	return c.q.Get(name)
}

// bodyStr returns a body field as a string ("" when absent or not a string).
func (c *call) bodyStr(name string) string {
	s, _ := c.body[name].(string)
	return s
}

// input returns a named input wherever it was sent: path, query or body.
func (c *call) input(name string) string {
	if v := c.param(name); v != "" {
		return v
	}
	if v := c.query(name); v != "" {
		return v
	}
	if v, ok := c.body[name]; ok && v != nil {
		return scalar(v)
	}
	return ""
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64, bool, json.Number:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return ""
}

// serveOp serves a catalog operation: route, faults, auth, version, scope,
// location, rate limit, body, log, handler.
func (s *Server) serveOp(w http.ResponseWriter, r *http.Request) {
	c := &call{s: s, w: w, r: r, now: s.now()}
	rt := s.routes.match(r.Method, r.URL.Path, &c.params)
	if rt == nil {
		notFound(w, r)
		return
	}
	c.rt = rt
	app := rt.op.App
	if s.faults.active() {
		if s.injectFault(c) {
			return
		}
	}
	if r.Method != http.MethodGet && r.Body != nil {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			s.fail(c, "", errf(http.StatusBadRequest, "read body: "+err.Error()))
			return
		}
		c.raw = raw
	}
	if e := s.authenticate(c); e != nil {
		s.fail(c, "", e)
		return
	}
	locID := ""
	if c.loc != nil {
		locID = c.loc.id
	}
	if !s.limiter.allow(c, app, locID) {
		return
	}
	if len(c.raw) > 0 {
		if e := c.parseBody(); e != nil {
			s.fail(c, locID, e)
			return
		}
	}
	if e := s.validate(c); e != nil {
		s.fail(c, locID, e)
		return
	}
	status, body := rt.handler(s, c)
	if e, ok := body.(*apiError); ok {
		s.fail(c, locID, e)
		return
	}
	s.logs.record(c, locID, status)
	writeJSON(w, status, body)
}

// fail logs and answers an error in the app's format.
func (s *Server) fail(c *call, locID string, e *apiError) {
	s.logs.record(c, locID, e.status)
	writeJSON(c.w, e.status, errorBody(c.rt.op.App, e))
}

// parseBody decodes the JSON body; an array body's first element becomes
// the body (Referral Rock's bulk updates).
func (c *call) parseBody() *apiError {
	b := strings.TrimSpace(string(c.raw))
	if b == "" {
		return nil
	}
	ct := c.r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		vals, err := url.ParseQuery(b)
		if err != nil {
			return errf(http.StatusBadRequest, "invalid form body")
		}
		c.body = map[string]any{}
		for k, v := range vals {
			c.body[k] = v[0]
		}
		return nil
	}
	if b[0] == '[' {
		var arr []map[string]any
		if err := json.Unmarshal(c.raw, &arr); err != nil {
			return errf(http.StatusBadRequest, "Unexpected token in JSON body")
		}
		if len(arr) > 0 {
			c.body = arr[0]
		}
		return nil
	}
	if err := json.Unmarshal(c.raw, &c.body); err != nil {
		return errf(http.StatusBadRequest, "Unexpected token in JSON body")
	}
	return nil
}

// validate checks required inputs and, for GHL, rejects body properties the
// operation does not declare (GHL's whitelist validation).
func (s *Server) validate(c *call) *apiError {
	var msgs []string
	for _, op := range c.rt.ops[:1] {
		for _, in := range op.Inputs {
			if !in.Required {
				continue
			}
			switch in.In {
			case "query":
				if c.query(in.Name) == "" {
					msgs = append(msgs, in.Name+" should not be empty")
				}
			case "body":
				if v := lookupDotted(c.body, in.Name); v == nil || v == "" {
					msgs = append(msgs, in.Name+" should not be empty")
				}
			}
		}
		if op.App == "ghl" && c.body != nil {
			for k := range c.body {
				if !declaresBody(c.rt, k) {
					msgs = append(msgs, "property "+k+" should not exist")
				}
			}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if c.rt.op.App == "ghl" {
		return unprocessable(msgs...)
	}
	return errf(http.StatusBadRequest, strings.Join(msgs, "; "))
}

// declaresBody reports whether any operation of the route takes body
// property k (dotted inputs declare their first segment).
func declaresBody(rt *route, k string) bool {
	for _, op := range rt.ops {
		for _, in := range op.Inputs {
			if in.In != "body" {
				continue
			}
			n := in.Name
			if i := strings.IndexByte(n, '.'); i > 0 {
				n = n[:i]
			}
			if n == k {
				return true
			}
		}
	}
	return false
}

// lookupDotted reads a dotted path ("query.primaryInfo.referralId") from a
// decoded JSON object.
func lookupDotted(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}
