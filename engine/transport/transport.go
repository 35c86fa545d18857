// Package transport performs catalog operations over HTTP for triggers and
// actions: it resolves a connection to its app, base URL and credential,
// builds the request from the operation and inputs, adds authentication and
// the Version header, waits on the shared rate limiter, renews a refused
// token once, waits and retries on 429s, and classifies failures into typed
// errors. Credentials never reach an error or a log line.
package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/tidwall/gjson"
)

// Resolver turns a connection id into the connection and a credential that
// is valid now. auth.Static and auth.Store implement it.
type Resolver = auth.Source

// Limiter paces requests per (app, resource) across every process. A
// resource is what the app counts its budget per: a GHL location or company,
// a referral-app account. engine/ratelimit implements it.
type Limiter interface {
	// Wait blocks until a request may be sent, or ctx ends.
	Wait(ctx context.Context, app, resource string) error
	// Observe learns from an answer's headers (GHL's X-RateLimit-*).
	Observe(ctx context.Context, app, resource string, h http.Header)
	// Pause holds every request of the resource back for d (after a 429).
	Pause(ctx context.Context, app, resource string, d time.Duration)
}

// Config sets up a Transport. Only Catalog and Connections are required.
type Config struct {
	// Catalog supplies the apps (base URL, version header).
	Catalog *catalog.Catalog
	// Connections resolves connection ids.
	Connections Resolver
	// Limiter paces requests; nil sends without pacing (tests, tools).
	Limiter Limiter
	// Client sends the requests (default: a client with sane transport
	// timeouts and no overall timeout; Timeout bounds each call).
	Client *http.Client
	// BaseURL, when set, replaces every app's base URL (a simulator);
	// BaseURLs does so per app id. A connection's own base URL wins over
	// both.
	BaseURL  string
	BaseURLs map[string]string
	// Timeout bounds each attempt (default 30 s).
	Timeout time.Duration
	// MaxResponse caps the response body in bytes (default 16 MiB).
	MaxResponse int64
	// Attempts is how many times a call is tried when it meets a 429 or a
	// transient failure (default 3). Only 429s (which the API did not
	// process) and idempotent methods (GET, HEAD) are retried.
	Attempts int
	// MaxWait is the longest Retry-After the transport waits out itself;
	// longer waits are returned as a *RateLimitedError (default 30 s).
	MaxWait time.Duration
	// Backoff is the first wait after a transient failure, doubled each
	// time, with jitter (default 200 ms).
	Backoff time.Duration
	// Logger receives one debug line per attempt and warnings for failures
	// (default slog.Default()). Lines never carry credentials.
	Logger *slog.Logger
	// UserAgent is sent with every request (default "ghlflow").
	UserAgent string
	// Observer, when set, is told of every attempt and rate-limiter wait.
	Observer Observer
}

// Observer is told what the transport does, for metrics. Its methods must
// be quick and safe for concurrent use.
type Observer interface {
	// ObserveCall reports one attempt of op of app: its status code (0
	// when no response came) and duration.
	ObserveCall(app, op string, status int, took time.Duration)
	// ObserveLimiterWait reports how long an attempt waited for the
	// shared rate limiter.
	ObserveLimiterWait(app string, waited time.Duration)
}

// Transport performs catalog operations. It is safe for concurrent use.
type Transport struct {
	cfg Config
	log *slog.Logger
	// bufs holds the buffers answers are read into (*bytes.Buffer).
	bufs sync.Pool
}

// New returns a Transport for cfg, filling in defaults.
func New(cfg Config) *Transport {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = 16 << 20
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ghlflow"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Transport{cfg: cfg, log: log}
}

// Call performs op through the named connection with the given inputs and
// returns the response body. Failures are *Error values wrapping a class of
// failure (see ErrUnauthorized and the others).
func (t *Transport) Call(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, error) {
	body, _, err := t.Do(ctx, connection, op, input)
	return body, err
}

// Do is Call that also returns the response headers of the final attempt.
func (t *Transport) Do(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, http.Header, error) {
	return t.do(ctx, connection, op, input, "")
}

// do performs op; endpoint, when set, is the URL to send to instead of the
// app's base URL and op's path.
func (t *Transport) do(ctx context.Context, connection string, op *catalog.Operation, input map[string]any,
	endpoint string) ([]byte, http.Header, error) {
	fail := func(status int, msg string, err error) ([]byte, http.Header, error) {
		return nil, nil, &Error{Op: op.ID, Connection: connection, Status: status, Message: msg, Err: err}
	}
	res, app, err := t.resolve(ctx, connection, op)
	if err != nil {
		return fail(0, "", err)
	}
	input = withLocation(op, &res.Conn, input)
	base := t.baseURL(app, &res.Conn)
	if endpoint != "" {
		base = endpoint
	}
	return t.send(ctx, connection, op, app, base, input, res, fail)
}

// resolve finds the connection of a call and the app of its operation.
func (t *Transport) resolve(ctx context.Context, connection string, op *catalog.Operation) (*auth.Resolved, *catalog.App, error) {
	if t.cfg.Connections == nil {
		return nil, nil, fmt.Errorf("%w: no connection source configured", ErrConnection)
	}
	res, err := t.cfg.Connections.Resolve(ctx, connection)
	if err != nil {
		return nil, nil, resolveErr(err)
	}
	if res.Conn.App != op.App {
		return nil, nil, fmt.Errorf("%w: connection is for app %s, operation for %s", ErrConnection, res.Conn.App, op.App)
	}
	app := t.cfg.Catalog.App(op.App)
	if app == nil {
		return nil, nil, fmt.Errorf("%w: unknown app %s", ErrConnection, op.App)
	}
	return res, app, nil
}

// send makes the attempts of a call: it waits on the limiter, renews a
// refused credential once, waits out short 429s and retries transient
// failures of idempotent methods.
func (t *Transport) send(ctx context.Context, connection string, op *catalog.Operation, app *catalog.App, base string,
	input map[string]any, res *auth.Resolved, fail func(int, string, error) ([]byte, http.Header, error)) ([]byte, http.Header, error) {
	resource := Resource(&res.Conn, input)
	renewed := false
	idempotent := op.Method == http.MethodGet || op.Method == http.MethodHead
	backoff := t.cfg.Backoff
	for attempt := 1; ; attempt++ {
		if t.cfg.Limiter != nil {
			waitStart := time.Now()
			if err := t.cfg.Limiter.Wait(ctx, op.App, resource); err != nil {
				return fail(0, "", fmt.Errorf("%w: rate limiter: %w", ErrTransient, err))
			}
			if t.cfg.Observer != nil {
				t.cfg.Observer.ObserveLimiterWait(op.App, time.Since(waitStart))
			}
		}
		a := t.attempt(ctx, app, op, base, input, res)
		if t.cfg.Observer != nil {
			t.cfg.Observer.ObserveCall(op.App, op.ID, a.status, a.took)
		}
		if a.header != nil && t.cfg.Limiter != nil {
			t.cfg.Limiter.Observe(ctx, op.App, resource, a.header)
		}
		if a.err == nil {
			t.log.Debug("call", "op", op.ID, "connection", connection, "status", a.status, "attempt", attempt,
				"duration", a.took)
			return a.body, a.header, nil
		}
		t.log.Debug("call failed", "op", op.ID, "connection", connection, "status", a.status, "attempt", attempt,
			"duration", a.took, "error", a.err.Error())
		var rl *RateLimitedError
		switch {
		case errors.Is(a.err, errRenew) && !renewed:
			renewed = true
			nres, rerr := t.cfg.Connections.Renew(ctx, connection, res.Cred)
			if rerr != nil {
				t.log.Warn("credential refused", "op", op.ID, "connection", connection, "error", sanitize(rerr))
				return fail(a.status, a.msg, fmt.Errorf("%w: %w", ErrUnauthorized, rerr))
			}
			res = nres
			attempt-- // a renewal is not a retry
			continue
		case errors.Is(a.err, errRenew):
			return fail(a.status, a.msg, ErrUnauthorized)
		case errors.As(a.err, &rl):
			if t.cfg.Limiter != nil && rl.RetryAfter > 0 {
				t.cfg.Limiter.Pause(ctx, op.App, resource, rl.RetryAfter)
			}
			if rl.Daily || attempt >= t.cfg.Attempts || rl.RetryAfter > t.cfg.MaxWait {
				return fail(a.status, a.msg, a.err)
			}
			if err := sleep(ctx, max(rl.RetryAfter, 50*time.Millisecond)); err != nil {
				return fail(a.status, a.msg, a.err)
			}
			continue
		case errors.Is(a.err, ErrTransient) && idempotent && attempt < t.cfg.Attempts && ctx.Err() == nil:
			d := backoff/2 + rand.N(backoff)
			backoff *= 2
			if err := sleep(ctx, d); err != nil {
				return fail(a.status, a.msg, a.err)
			}
			continue
		}
		if a.status == 0 || a.status >= 500 {
			t.log.Warn("call failed", "op", op.ID, "connection", connection, "status", a.status, "error", a.err.Error())
		}
		return fail(a.status, a.msg, a.err)
	}
}

// errRenew marks a 401 that a renewed credential may cure.
var errRenew = errors.New("credential refused")

type attemptResult struct {
	status int
	header http.Header
	body   []byte
	msg    string
	err    error
	took   time.Duration
}

func (t *Transport) attempt(ctx context.Context, app *catalog.App, op *catalog.Operation, base string, input map[string]any, res *auth.Resolved) attemptResult {
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	req, err := catalog.NewRequest(actx, app, op, base, input)
	if err != nil {
		// Usually a *catalog.InputError, kept in the chain for errors.As.
		return attemptResult{err: fmt.Errorf("%w: %w", ErrInput, err)}
	}
	if h := res.Cred.Authorization(); h != "" {
		req.Header.Set("Authorization", h)
	}
	req.Header.Set("User-Agent", t.cfg.UserAgent)
	resp, err := t.cfg.Client.Do(req)
	if err != nil {
		return attemptResult{err: netErr(ctx, err), took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := t.readBody(resp)
	r := attemptResult{status: resp.StatusCode, header: resp.Header, took: time.Since(start)}
	if err != nil {
		r.err = netErr(ctx, err)
		return r
	}
	if int64(len(body)) > t.cfg.MaxResponse {
		r.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, t.cfg.MaxResponse)
		return r
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		r.body = body
		return r
	}
	r.msg, r.err = classify(resp.StatusCode, resp.Header, body)
	return r
}

// maxPooledBuffer is the largest read buffer kept for the next answer.
const maxPooledBuffer = 1 << 20

// readBody reads an answer, up to MaxResponse+1 bytes, into a buffer kept
// between calls and returns a copy of exactly its size: one allocation an
// answer instead of the doublings of io.ReadAll.
func (t *Transport) readBody(resp *http.Response) ([]byte, error) {
	buf, _ := t.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, t.cfg.MaxResponse+1))
	body := bytes.Clone(buf.Bytes())
	if body == nil {
		body = []byte{}
	}
	if buf.Cap() <= maxPooledBuffer {
		t.bufs.Put(buf)
	}
	return body, err
}

// Messages GHL answers with that tell auth failures apart.
const (
	msgScope     = "not authorized for this scope"
	msgAuthClass = "authclass is not yet supported"
	msgLocation  = "does not have access to this location"
)

// classify turns an error answer into the API's message and a class of
// failure.
func classify(status int, h http.Header, body []byte) (string, error) {
	msgs := messages(body)
	msg := strings.Join(msgs, "; ")
	low := strings.ToLower(msg)
	switch {
	case status == http.StatusUnauthorized && strings.Contains(low, msgScope):
		return msg, ErrScopeMissing
	case (status == http.StatusUnauthorized || status == http.StatusForbidden) && strings.Contains(low, msgAuthClass):
		return msg, fmt.Errorf("%w: wrong token type for this operation", ErrForbidden)
	case status == http.StatusUnauthorized:
		return msg, errRenew
	case status == http.StatusForbidden:
		return msg, ErrForbidden
	case status == http.StatusNotFound:
		return msg, ErrNotFound
	case status == http.StatusTooManyRequests:
		return msg, rateLimited(h)
	case status == http.StatusRequestTimeout || status >= 500:
		return msg, ErrTransient
	}
	if len(msgs) == 0 {
		msgs = []string{http.StatusText(status)}
	}
	return msg, &ValidationError{Status: status, Messages: msgs}
}

// rateLimited reads a 429's headers: Retry-After and whether the daily
// budget is the one spent.
func rateLimited(h http.Header) *RateLimitedError {
	e := &RateLimitedError{}
	if v := h.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if at, err := http.ParseTime(v); err == nil {
			e.RetryAfter = max(time.Until(at), 0)
		}
	}
	if d := h.Get("X-RateLimit-Daily-Remaining"); d != "" {
		if n, err := strconv.Atoi(d); err == nil && n <= 0 && h.Get("X-RateLimit-Limit-Daily") != "0" {
			e.Daily = true
		}
	}
	if e.RetryAfter == 0 && !e.Daily {
		if ms, err := strconv.Atoi(h.Get("X-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
			e.RetryAfter = time.Duration(ms) * time.Millisecond
		} else {
			e.RetryAfter = time.Second
		}
	}
	return e
}

// messages extracts the API's error message(s) from an error body: GHL's
// {"message": "..." | [...]}, Referrizer's {"errorCode", "message"}, Referral
// Rock's {"message"} or {"Message"}, or a short plain-text body.
func messages(body []byte) []string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if !gjson.ValidBytes(body) {
		s := string(body)
		if len(s) > 300 {
			s = s[:300] + "..."
		}
		return []string{s}
	}
	for _, key := range []string{"message", "Message", "error_description", "errors", "error"} {
		r := gjson.GetBytes(body, key)
		if !r.Exists() {
			continue
		}
		var out []string
		if r.IsArray() {
			for _, m := range r.Array() {
				if s := m.String(); s != "" {
					out = append(out, s)
				}
			}
		} else if r.IsObject() {
			out = append(out, r.Raw)
		} else if s := r.String(); s != "" {
			out = append(out, s)
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// netErr classifies a failure to get an answer. It drops the URL (which
// *url.Error carries) so inputs in query strings stay out of messages.
func netErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrTransient, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: timeout", ErrTransient)
	}
	return fmt.Errorf("%w: %s", ErrTransient, sanitize(err))
}

// resolveErr maps a connection lookup failure to a class of failure.
func resolveErr(err error) error {
	switch {
	case errors.Is(err, auth.ErrNeedsReauth):
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case errors.Is(err, auth.ErrNotFound), errors.Is(err, auth.ErrPaused):
		return fmt.Errorf("%w: %w", ErrConnection, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s", ErrTransient, sanitize(err))
	}
	return fmt.Errorf("%w: %w", ErrTransient, err)
}

// sanitize renders err without anything that looks like a credential.
func sanitize(err error) string {
	if err == nil {
		return ""
	}
	return auth.Redact(err.Error())
}

func (t *Transport) baseURL(app *catalog.App, c *auth.Connection) string {
	switch {
	case c.BaseURL != "":
		return c.BaseURL
	case t.cfg.BaseURLs[app.ID] != "":
		return t.cfg.BaseURLs[app.ID]
	case t.cfg.BaseURL != "":
		return t.cfg.BaseURL
	}
	return app.BaseURL
}

// Resource returns what the app counts a call's budget against: the
// connection's location, else the locationId input (an agency token acting
// on a location), else its company, else the connection itself.
func Resource(c *auth.Connection, input map[string]any) string {
	if c.LocationID != "" {
		return c.LocationID
	}
	if s, ok := input["locationId"].(string); ok && s != "" {
		return s
	}
	if c.CompanyID != "" {
		return c.CompanyID
	}
	return "conn:" + c.ID
}

// withLocation fills the operation's location input (locationId or
// location_id, catalog ConnectionLocationInputs) from the connection's
// location when the caller left it out. It copies input rather than change
// it.
func withLocation(op *catalog.Operation, c *auth.Connection, input map[string]any) map[string]any {
	if c.LocationID == "" {
		return input
	}
	for _, name := range catalog.ConnectionLocationInputs {
		if op.Input(name) == nil {
			continue
		}
		if v, ok := input[name]; ok && v != nil && v != "" {
			return input
		}
		out := make(map[string]any, len(input)+1)
		for k, v := range input {
			out[k] = v
		}
		out[name] = c.LocationID
		return out
	}
	return input
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// ExchangeLocationToken makes a GHL agency-to-location token exchange
// (auth.Exchanger) like any other call, with the agency connection's
// credential: it waits on the rate limiter, renews a refused agency token
// once and classifies failures; a refusal (401, 403, 4xx but 429, an agency
// connection unknown or needing a new authorization) also wraps
// auth.ErrGrantRefused.
func (t *Transport) ExchangeLocationToken(ctx context.Context, req auth.LocationTokenRequest) ([]byte, error) {
	op := &catalog.Operation{ID: req.App + ".oauth.locationToken", App: req.App, Kind: catalog.KindAction, Method: http.MethodPost,
		Version: req.Version, Body: catalog.BodyForm, Inputs: []catalog.Input{
			{Name: "companyId", Type: "string", In: catalog.InBody, Required: true},
			{Name: "locationId", Type: "string", In: catalog.InBody, Required: true}}}
	body, _, err := t.do(ctx, req.Agency, op, map[string]any{"companyId": req.CompanyID, "locationId": req.LocationID}, req.URL)
	if err != nil && refused(err) {
		return nil, fmt.Errorf("%w: %w", auth.ErrGrantRefused, err)
	}
	return body, err
}

// refused reports the failures of an exchange that only the user can fix.
func refused(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) ||
		errors.Is(err, ErrScopeMissing) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConnection)
}
