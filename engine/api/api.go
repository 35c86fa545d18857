// Package api is ghlflow's HTTP API, /api/v1: tenants, their connections
// and keys, recipes, subscriptions and chain runs, as JSON. Every route
// needs an API key (engine/apikey): an operator key reaches everything, a
// tenant key only its tenant's objects (another tenant's answer 404).
// Errors are {"error": {"code", "message", "field"}}; lists page with an
// opaque cursor; bodies are capped at MaxBody; every response carries an
// X-Request-Id, which the request's log line repeats. No response carries
// a secret: connections are shown by their metadata, and a key only once,
// when it is made.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/recipestore"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// MaxBody caps a request body (1 MB).
const MaxBody = 1 << 20

// Base is the path every route of the API starts with.
const Base = "/api/v1"

// Subscriptions are the subscriptions in force (engine.Registry).
type Subscriptions interface {
	All() []*engine.Subscription
	Get(id string) (*engine.Subscription, bool)
}

// Config wires the API to the engine's state. Redis, Catalog, Keys and
// Subscriptions are required.
type Config struct {
	Redis redis.UniversalClient
	// Prefix is the engine's key prefix ("" = engine.DefaultPrefix).
	Prefix  string
	Catalog *catalog.Catalog
	// Keys are the API keys.
	Keys *apikey.Store
	// Subscriptions are the subscriptions in force.
	Subscriptions Subscriptions
	// Connections is the sealed connection store; without it connections
	// are read-only through the API.
	Connections *auth.Store
	// StaticConnections are the connections of the static file the
	// engine runs with (metadata only): a tenant may name them as well as
	// stored ones.
	StaticConnections []auth.Connection
	// Poller runs the trigger tests; without it they answer 501.
	Poller *engine.Poller
	// RecipeFiles are the recipe files or folders the engine loads (shown
	// beside the stored recipes, read-only).
	RecipeFiles []string
	Logger      *slog.Logger
}

// API is the /api/v1 handler.
type API struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	routes  []Route
	tenants *tenant.Store
	recipes *recipestore.Store
	history *history.Store
	dedup   *dedup.Store
	pauses  *engine.SubPauses
	queue   *asynq.Client
	inspect *asynq.Inspector
}

// Route is one route of the API.
type Route struct {
	Method string
	// Path is the route's path in net/http's pattern syntax, which is also
	// OpenAPI's ({id}).
	Path string
	// Summary says what it does (the OpenAPI summary).
	Summary string
	// Tenant is true when a tenant key may call it (else operator only).
	Tenant bool
	// Status is the success status; Response and Request name the body
	// schemas of the OpenAPI document ("" = none).
	Status            int
	Response, Request string
	handle            func(w http.ResponseWriter, r *http.Request, k apikey.Key)
}

// New returns the API.
func New(cfg Config) *API {
	if cfg.Prefix == "" {
		cfg.Prefix = engine.DefaultPrefix
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &API{cfg: cfg, log: log, mux: http.NewServeMux(),
		tenants: tenant.NewStore(cfg.Redis, cfg.Prefix), recipes: recipestore.New(cfg.Redis, cfg.Prefix),
		history: history.New(cfg.Redis, history.Options{Prefix: cfg.Prefix}), dedup: dedup.New(cfg.Redis, dedup.Options{Prefix: cfg.Prefix}), pauses: engine.NewSubPauses(cfg.Redis, cfg.Prefix),
		queue: asynq.NewClientFromRedisClient(cfg.Redis), inspect: asynq.NewInspectorFromRedisClient(cfg.Redis)}
	a.routes = a.table()
	for _, rt := range a.routes {
		a.mux.Handle(rt.Method+" "+rt.Path, a.guard(rt))
	}
	a.mux.HandleFunc(Base+"/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.authenticate(w, r); ok {
			writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path, "")
		}
	})
	return a
}

// Routes returns the API's routes (every one needs a key).
func (a *API) Routes() []Route { return a.routes }

// ServeHTTP serves the API with request ids, the body cap and a log line
// per request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	WithRequestID(a.log, a.mux).ServeHTTP(w, r)
}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request id of r's context ("" = none).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithRequestID gives each request an id (the client's X-Request-Id when
// it is a plain token, else a new one), echoes it in the response's
// X-Request-Id, caps the body at MaxBody and logs one line per request.
func WithRequestID(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRe.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
		log.Info("http", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"took", time.Since(start).Round(time.Microsecond))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// CookieName is the cookie the login form sets: the key itself, HttpOnly.
const CookieName = "ghlflow_key"

// CSRFHeader must accompany a request that changes something and is
// authenticated by the login cookie: a page's script sets it, a form on
// another site cannot.
const CSRFHeader = "X-Ghlflow-Csrf"

// Presented returns the key a request presents: "Authorization: Bearer
// KEY", "X-API-Key: KEY" or the login cookie. A cookie on a request that
// is not GET or HEAD counts only with CSRFHeader.
func Presented(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if k, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(k)
		}
		return ""
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		return strings.TrimSpace(k)
	}
	if c, err := r.Cookie(CookieName); err == nil {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(CSRFHeader) == "" {
			return ""
		}
		return c.Value
	}
	return ""
}

// Authenticate returns the key r presents, or apikey.ErrNotFound.
func (a *API) Authenticate(r *http.Request) (apikey.Key, error) {
	return a.cfg.Keys.Lookup(r.Context(), Presented(r))
}

// authenticate finds the request's key, answering 401 when there is none.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (apikey.Key, bool) {
	k, err := a.cfg.Keys.Lookup(r.Context(), Presented(r))
	if err != nil {
		if !strings.Contains(err.Error(), apikey.ErrNotFound.Error()) {
			a.log.Error("api key lookup", "request_id", RequestID(r.Context()), "err", err)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ghlflow"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API key is required (Authorization: Bearer KEY)", "")
		return apikey.Key{}, false
	}
	return k, true
}

// guard authenticates the request and refuses tenant keys on operator
// routes.
func (a *API) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if !k.Operator() && !rt.Tenant {
			// Another tenant's object is not found, whatever the route.
			if strings.HasPrefix(rt.Path, Base+"/tenants/{id}") && r.PathValue("id") != k.Tenant {
				notFound(w, "tenant", r.PathValue("id"))
				return
			}
			writeError(w, http.StatusForbidden, "forbidden", "this route needs an operator key", "")
			return
		}
		rt.handle(w, r, k)
	})
}
