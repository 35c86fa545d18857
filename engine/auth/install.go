package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"golang.org/x/oauth2"
)

// ErrBadState means an install callback's state is unknown, altered,
// already used or expired.
var ErrBadState = errors.New("install state is invalid, used or expired")

// InstallRequest asks for an OAuth install.
type InstallRequest struct {
	// App is the catalog app id (ghl).
	App string `json:"app"`
	// Scopes to ask for: the union of what the recipes using the
	// connection need (see RequiredScopes).
	Scopes []string `json:"scopes"`
	// Name is the id of the connection to create; default "<app>-<location
	// id>" (or "<app>-agency-<company id>").
	Name string `json:"name,omitempty"`
	// Agency asks for an agency (Company) install.
	Agency bool `json:"agency,omitempty"`
	// Locations, for an agency install, are the locations to exchange for
	// location connections named "<name>-<location id>"; ["*"] means every
	// approved location.
	Locations []string `json:"locations,omitempty"`
	// Extra query parameters for the authorize page.
	Extra map[string]string `json:"extra,omitempty"`
}

type installState struct {
	InstallRequest
	Expires time.Time `json:"expires"`
}

func (s *Store) stateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return s.keys.InstallState(hex.EncodeToString(sum[:]))
}

// StartInstall records a single-use state for req and returns the authorize
// URL to send the user to.
func (s *Store) StartInstall(ctx context.Context, req InstallRequest) (string, error) {
	app, err := s.oauthApp(req.App)
	if err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("install state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(b)
	rec, err := json.Marshal(installState{InstallRequest: req, Expires: s.now().Add(s.cfg.StateTTL).UTC()})
	if err != nil {
		return "", err
	}
	// Only a hash of the state is kept: the state itself is a bearer value.
	if err := s.rdb.Set(ctx, s.stateKey(state), rec, s.cfg.StateTTL).Err(); err != nil {
		return "", fmt.Errorf("install state: %w", err)
	}
	opts := []oauth2.AuthCodeOption{}
	if req.Agency {
		opts = append(opts, oauth2.SetAuthURLParam("user_type", "Company"))
	}
	for k, v := range req.Extra {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return app.config(req.Scopes).AuthCodeURL(state, opts...), nil
}

// FinishInstall checks state (once: it is deleted as it is read), exchanges
// code for tokens and stores the connection, plus, for an agency install,
// the location connections asked for. It returns the connections made.
func (s *Store) FinishInstall(ctx context.Context, state, code string) ([]Connection, error) {
	if state == "" {
		return nil, ErrBadState
	}
	raw, err := s.rdb.GetDel(ctx, s.stateKey(state)).Result()
	if rdb.IsNil(err) {
		return nil, ErrBadState
	}
	if err != nil {
		return nil, fmt.Errorf("install state: %w", err)
	}
	var st installState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, ErrBadState
	}
	if !s.now().Before(st.Expires) {
		return nil, ErrBadState
	}
	if code == "" {
		return nil, errors.New("install: no authorization code")
	}
	app, err := s.oauthApp(st.App)
	if err != nil {
		return nil, err
	}
	hctx := context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := app.config(st.Scopes).Exchange(hctx, code)
	if err != nil {
		return nil, fmt.Errorf("install: exchange code: %w", tokenErr(err))
	}
	c := Connection{ID: st.Name, App: st.App, Kind: KindOAuth, LocationID: extraString(tok, "locationId"),
		CompanyID: extraString(tok, "companyId"), UserType: extraString(tok, "userType"), Scopes: scopesOf(tok),
		BaseURL: app.BaseURL, Status: StatusOK}
	if c.ID == "" {
		if c.LocationID != "" {
			c.ID = st.App + "-" + c.LocationID
		} else {
			c.ID = st.App + "-agency-" + c.CompanyID
		}
	}
	if err := s.Put(ctx, c, credFromToken(tok)); err != nil {
		return nil, err
	}
	s.log.Info("connection installed", "connection", c.ID, "app", c.App, "location", c.LocationID,
		"company", c.CompanyID, "scopes", len(c.Scopes))
	out := []Connection{c}
	if c.LocationID != "" || len(st.Locations) == 0 {
		return out, nil
	}
	locs := st.Locations
	if slices.Contains(locs, "*") {
		locs = nil
		if list, ok := tok.Extra("approvedLocations").([]any); ok {
			for _, l := range list {
				if id, ok := l.(string); ok {
					locs = append(locs, id)
				}
			}
		}
	}
	for _, loc := range locs {
		lc, err := s.ExchangeLocation(ctx, c.ID, loc, c.ID+"-"+loc)
		if err != nil {
			return out, err
		}
		out = append(out, lc)
	}
	return out, nil
}

// ExchangeLocation makes a location connection (id) from the agency
// connection agencyID through GHL's location token exchange. The new
// connection renews its token through the agency connection.
func (s *Store) ExchangeLocation(ctx context.Context, agencyID, locationID, id string) (Connection, error) {
	parent, err := s.Get(ctx, agencyID)
	if err != nil {
		return Connection{}, err
	}
	cred, scopes, err := s.exchange(ctx, parent.App, agencyID, parent.CompanyID, locationID)
	if err != nil {
		return Connection{}, fmt.Errorf("location %s from %s: %s", locationID, agencyID, Redact(err.Error()))
	}
	c := Connection{ID: id, App: parent.App, Kind: KindOAuth, LocationID: locationID, CompanyID: parent.CompanyID,
		UserType: "Location", Scopes: scopes, BaseURL: parent.BaseURL, Parent: agencyID, Status: StatusOK}
	if len(c.Scopes) == 0 {
		c.Scopes = parent.Scopes
	}
	if err := s.Put(ctx, c, cred); err != nil {
		return Connection{}, err
	}
	return c, nil
}

// InstallHandler serves the install flow over HTTP:
//
//	GET /oauth/start?app=ghl&scopes=a,b&name=...&agency=1&locations=x,y
//	    redirects to the app's authorize page with a fresh state;
//	GET /oauth/callback?code=...&state=...
//	    checks the state, exchanges the code and stores the connection.
//
// Mount it behind the API's authentication: starting an install is an
// administrator's act. Each hook is told of the connections an install
// made (the engine makes a tenant of each location).
func (s *Store) InstallHandler(hooks ...InstallHook) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/start", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := InstallRequest{App: q.Get("app"), Name: q.Get("name"), Scopes: splitList(q.Get("scopes")),
			Agency: q.Get("agency") == "1" || q.Get("agency") == "true", Locations: splitList(q.Get("locations"))}
		if req.App == "" {
			req.App = "ghl"
		}
		u, err := s.StartInstall(r.Context(), req)
		if err != nil {
			http.Error(w, "cannot start the install: "+Redact(err.Error()), http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	})
	mux.HandleFunc("GET /oauth/callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if e := q.Get("error"); e != "" {
			http.Error(w, "the install was not approved: "+e, http.StatusBadRequest)
			return
		}
		conns, err := s.FinishInstall(r.Context(), q.Get("state"), q.Get("code"))
		if errors.Is(err, ErrBadState) {
			http.Error(w, "this install link is invalid, was already used or has expired; start again", http.StatusBadRequest)
			return
		}
		for _, hook := range hooks {
			if err == nil {
				err = hook(r.Context(), conns)
			}
		}
		if err != nil {
			s.log.Warn("install failed", "error", Redact(err.Error()))
			http.Error(w, "the install failed: "+Redact(err.Error()), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Connected</title><p>Connected:</p><ul>")
		for _, c := range conns {
			fmt.Fprintf(w, "<li>%s (%s %s%s)</li>", html.EscapeString(c.ID), html.EscapeString(c.App),
				html.EscapeString(c.LocationID), html.EscapeString(map[bool]string{true: "agency " + c.CompanyID}[c.LocationID == ""]))
		}
		fmt.Fprint(w, "</ul><p>You can close this page.</p>")
	})
	return mux
}

// InstallHook is told of the connections an install made.
type InstallHook func(ctx context.Context, conns []Connection) error

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
