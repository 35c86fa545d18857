// Package web serves ghlflow's pages: a login form that sets a cookie, the
// run history at / (tenants, subscriptions with their last poll, next due,
// new items, errors and connection status; a subscription's page; a run's
// page with each step's input, output and error; buttons that pause,
// resume, test and replay through the API), and the asynq web UI at
// /monitoring behind an operator key. Pages are server-rendered
// html/template; their data comes from the API with the visitor's key, so
// a tenant key sees only its tenant.
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/ghlflow/ghlflow/engine/api"
	"github.com/ghlflow/ghlflow/engine/apikey"
)

//go:embed templates/*.html
var templateFS embed.FS

// Config wires the pages.
type Config struct {
	// API is the /api/v1 handler; it is served under api.Base too.
	API *api.API
	// Monitoring is the asynq web UI, rooted at /monitoring (nil = none).
	Monitoring http.Handler
	// OAuth is the install handler (auth.Store.InstallHandler):
	// /oauth/start needs an operator key, /oauth/callback is open (the
	// app's authorize page sends the user there).
	OAuth http.Handler
	// Fallback serves every other path (/healthz, /metrics).
	Fallback http.Handler
	Logger   *slog.Logger
}

// Site serves the pages, the API and /monitoring.
type Site struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
}

// New returns the site.
func New(cfg Config) *Site {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Site{cfg: cfg, log: log, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"when": when, "pretty": pretty, "join": strings.Join, "replayBody": replayBody}
	for _, name := range []string{"login", "index", "subscription", "run"} {
		s.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	s.mux.Handle(api.Base+"/", cfg.API)
	if cfg.Monitoring != nil {
		mon := s.operatorOnly(cfg.Monitoring)
		s.mux.Handle("/monitoring/", mon)
		s.mux.Handle("/monitoring", http.RedirectHandler("/monitoring/", http.StatusFound))
	}
	if cfg.OAuth != nil {
		s.mux.Handle("/oauth/start", s.operatorOnly(cfg.OAuth))
		s.mux.Handle("/oauth/", cfg.OAuth)
	}
	s.mux.HandleFunc("GET /login", s.loginForm)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("GET /{$}", s.page(s.index))
	s.mux.HandleFunc("GET /subscriptions/{id}", s.page(s.subscription))
	s.mux.HandleFunc("GET /runs/{id}", s.page(s.run))
	if cfg.Fallback != nil {
		s.mux.Handle("/", cfg.Fallback)
	}
	return s
}

// ServeHTTP serves the site with request ids and security headers.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, api.Base+"/") {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "same-origin")
	}
	if strings.HasPrefix(r.URL.Path, api.Base+"/") {
		s.mux.ServeHTTP(w, r) // the API gives its own request ids
		return
	}
	api.WithRequestID(s.log, s.mux).ServeHTTP(w, r)
}

// operatorOnly lets operator keys through; a browser without a key is sent
// to the login form.
func (s *Site) operatorOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := s.cfg.API.Authenticate(r)
		switch {
		case err != nil && r.Method == http.MethodGet:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		case err != nil:
			http.Error(w, "an operator key is required", http.StatusUnauthorized)
		case !k.Operator():
			http.Error(w, "an operator key is required", http.StatusForbidden)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// view is what every page template gets.
type view struct {
	Title    string
	Key      apikey.Key
	Error    string
	Next     string
	Data     any
	Operator bool
}

// page authenticates a page's visitor (else: to the login form) and
// renders what fn returns.
func (s *Site) page(fn func(r *http.Request, key string, v *view) (string, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, err := s.cfg.API.Authenticate(r)
		if err != nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		v := &view{Key: k, Operator: k.Operator()}
		name, status := fn(r, api.Presented(r), v)
		s.render(w, name, status, v)
	}
}

func (s *Site) render(w http.ResponseWriter, name string, status int, v *view) {
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// get calls the API with the visitor's key and decodes its answer.
func (s *Site) get(r *http.Request, key, path string, out any) (int, error) {
	req := httptest.NewRequest(http.MethodGet, path, nil).WithContext(r.Context())
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	s.cfg.API.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		var eb api.ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
		return rec.Code, fmt.Errorf("%s: %s", path, eb.Error.Message)
	}
	return rec.Code, json.Unmarshal(rec.Body.Bytes(), out)
}

func when(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04:05Z")
	case *time.Time:
		if v == nil || v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04:05Z")
	}
	return "—"
}

func pretty(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// replayBody is the API body that replays item key.
func replayBody(key string) string {
	b, _ := json.Marshal(api.ReplayRequest{ItemKey: key})
	return string(b)
}
