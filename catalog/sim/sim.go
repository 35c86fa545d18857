// Package sim is an in-memory, spec-faithful stand-in for the APIs in the
// catalog: HighLevel (GHL) v2, Referral Rock and Referrizer, all served from
// one base URL (their paths do not collide). It implements OAuth and bearer
// auth with scopes and location checks, the Version header, per-location
// rate limits with GHL's headers, GHL error bodies, paging, fault injection,
// a data generator and signed webhooks, and it records every request and
// write for tests to inspect.
package sim

import (
	"crypto/ed25519"
	"crypto/rsa"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
)

// Config sets up a Server. The zero value is usable: GHL's documented limits,
// one-day tokens, a fixed seed.
type Config struct {
	// Burst, Interval and Daily override GHL's rate limit (100 per 10 s,
	// 200,000 a day). A negative Burst or Daily disables that limit.
	Burst    int
	Interval time.Duration
	Daily    int
	// RateLimits overrides the budget of other apps by app id (referralrock,
	// referrizer); by default the catalog's budget applies. A negative Burst
	// disables the limit.
	RateLimits map[string]catalog.RateLimit
	// TokenTTL is the lifetime of access tokens issued without their own TTL
	// (default 24 h; GHL answers expires_in 86399).
	TokenTTL time.Duration
	// CompanyID is the agency every location belongs to (default
	// "simCompany000000000").
	CompanyID string
	// ClientID and ClientSecret register one OAuth client at start (default
	// "sim-client" / "sim-secret").
	ClientID, ClientSecret string
	// Seed makes generated ids and data reproducible (0 = 1).
	Seed uint64
	// Now is the clock (default time.Now); tests may move it forward to
	// expire tokens.
	Now func() time.Time
	// AllowMissingVersion accepts GHL requests without a Version header.
	AllowMissingVersion bool
	// Faults is the fault injection in force at start.
	Faults Faults
	// LogLimit caps the request and write logs (default 200,000 entries
	// each); the oldest entries are dropped first.
	LogLimit int
	// WebhookRSA also signs webhooks with a legacy RSA key in x-wh-signature.
	WebhookRSA bool
	// WebhookURLs receive every webhook event from the start.
	WebhookURLs []string
}

// Server is the simulator, an http.Handler.
type Server struct {
	cat *catalog.Catalog
	cfg Config
	now func() time.Time

	routes  *router
	limiter *limiter
	auth    *authStore
	logs    *recorder
	faults  *faultState
	hooks   *webhooks

	mu        sync.RWMutex
	locations map[string]*location
	locOrder  []string

	rngMu sync.Mutex
	rng   *rand.Rand

	edPub  ed25519.PublicKey
	edPriv ed25519.PrivateKey
	rsaKey *rsa.PrivateKey
}

// New builds a simulator for every operation of cat.
func New(cat *catalog.Catalog, cfg Config) *Server {
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	if cfg.CompanyID == "" {
		cfg.CompanyID = "simCompany000000000"
	}
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = "sim-client", "sim-secret"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.LogLimit == 0 {
		cfg.LogLimit = 200000
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		cat:       cat,
		cfg:       cfg,
		now:       now,
		locations: map[string]*location{},
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed*7919+1)),
	}
	s.auth = newAuthStore()
	s.auth.registerClient(cfg.ClientID, cfg.ClientSecret)
	s.limiter = newLimiter(s)
	s.logs = newRecorder(cfg.LogLimit)
	s.faults = newFaultState(cfg.Faults, cfg.Seed)
	s.routes = newRouter(s, cat)
	s.hooks = newWebhooks(s, cfg.WebhookURLs)
	return s
}

// Catalog returns the catalog the server serves.
func (s *Server) Catalog() *catalog.Catalog { return s.cat }

// ServeHTTP dispatches a request: the simulator's own endpoints (/oauth/...,
// /_sim/...) first, then the catalog's operations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, "/oauth/") {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		s.serveOAuth(sw, r)
		s.logs.recordOAuth(Request{Op: "oauth." + strings.TrimPrefix(p, "/oauth/"), App: "ghl", Method: r.Method,
			Path: p, Status: sw.status, Time: s.now()})
		return
	}
	if strings.HasPrefix(p, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	s.serveOp(w, r)
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
