package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// DefaultLocationTokenVersion is the Version header GHL's location token
// exchange expects.
const DefaultLocationTokenVersion = "2021-07-28"

// OAuthApp is the OAuth 2.0 client ghlflow is registered as with an app.
type OAuthApp struct {
	ClientID     string
	ClientSecret string
	// AuthorizeURL is the page users approve installs on; TokenURL and
	// LocationTokenURL are the token endpoint and GHL's agency-to-location
	// exchange.
	AuthorizeURL     string
	TokenURL         string
	LocationTokenURL string
	// RedirectURL is where the authorize page sends users back
	// (/oauth/callback of ghlflow's HTTP API, or of `ghlflow connect`).
	RedirectURL string
	// BaseURL, when set, is stored on the connections this client installs
	// (a simulator or a white-label domain).
	BaseURL string
	// Version is the Version header for the location token exchange
	// (default DefaultLocationTokenVersion).
	Version string
}

// NewOAuthApp builds the OAuth client of a catalog app. baseURL replaces the
// app's base URL for every endpoint, including the authorize page (a
// simulator serves them all); "" keeps the catalog's URLs.
func NewOAuthApp(app *catalog.App, baseURL, clientID, clientSecret, redirectURL string) (*OAuthApp, error) {
	var a *catalog.Auth
	for i := range app.Auth {
		if app.Auth[i].Kind == "oauth2" {
			a = &app.Auth[i]
		}
	}
	if a == nil {
		return nil, fmt.Errorf("app %s has no OAuth 2.0 flow", app.ID)
	}
	if clientID == "" || clientSecret == "" {
		return nil, fmt.Errorf("app %s: OAuth client id and secret are required", app.ID)
	}
	base := strings.TrimRight(app.BaseURL, "/")
	authorize := a.AuthorizeURL
	if baseURL != "" {
		base = strings.TrimRight(baseURL, "/")
		if u, err := url.Parse(a.AuthorizeURL); err == nil {
			authorize = base + u.Path
		}
	}
	o := &OAuthApp{ClientID: clientID, ClientSecret: clientSecret, AuthorizeURL: authorize,
		TokenURL: base + a.TokenPath, RedirectURL: redirectURL}
	if a.LocationTokenPath != "" {
		o.LocationTokenURL = base + a.LocationTokenPath
	}
	if baseURL != "" {
		o.BaseURL = base
	}
	return o, nil
}

func (a *OAuthApp) config(scopes []string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     a.ClientID,
		ClientSecret: a.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: a.AuthorizeURL, TokenURL: a.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL:  a.RedirectURL,
		Scopes:       scopes,
	}
}

func (s *Store) oauthApp(app string) (*OAuthApp, error) {
	a := s.cfg.OAuth[app]
	if a == nil {
		return nil, fmt.Errorf("no OAuth client configured for app %s", app)
	}
	return a, nil
}

// errRefused marks a token endpoint's refusal of a grant (a spent or revoked
// refresh token, a removed install): only the user can fix it.
var errRefused = errors.New("grant refused")

// refreshMargin is how long before its expiry a token is renewed:
// RefreshAhead, but at most a third of the token's lifetime, so a token
// that lives 12 seconds is used for 8 of them rather than renewed on every
// call.
func (s *Store) refreshMargin(c Credential) time.Duration {
	m := s.cfg.RefreshAhead
	if !c.IssuedAt.IsZero() && c.ExpiresAt.After(c.IssuedAt) {
		m = min(m, c.ExpiresAt.Sub(c.IssuedAt)/3)
	}
	return m
}

// fresh reports whether cur already replaces stale: another caller renewed
// it and the new token is not expired.
func (s *Store) fresh(cur *Resolved, stale Credential) bool {
	return cur.Cred.AccessToken != stale.AccessToken && !cur.Cred.Expired(s.now(), 0)
}

// refresh renews connection id's token unless another caller already
// replaced stale. One caller per connection, across processes, talks to the
// token endpoint; the others poll the store until the new token is there.
func (s *Store) refresh(ctx context.Context, id string, stale Credential) (*Resolved, error) {
	start := time.Now()
	limit := s.cfg.LockTTL + s.cfg.RefreshTimeout
	wait := 5 * time.Millisecond
	for {
		cur, _, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := usable(&cur.Conn); err != nil {
			return nil, err
		}
		if s.fresh(cur, stale) {
			return cur, nil
		}
		fence, err := rdb.ConnLock.Run(ctx, s.rdb, []string{s.lockKey(id), s.fenceKey(id)},
			s.cfg.LockTTL.Milliseconds()).Int64()
		if err != nil {
			return nil, fmt.Errorf("connection %s: refresh lock: %w", id, err)
		}
		if fence > 0 {
			res, err := s.refreshLocked(ctx, id, stale, fence)
			if s.cfg.OnRefresh != nil {
				s.cfg.OnRefresh(err)
			}
			return res, err
		}
		if time.Since(start) > limit {
			return nil, fmt.Errorf("connection %s: waited %s for another refresh", id, limit)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connection %s: waiting for refresh: %w", id, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

func (s *Store) refreshLocked(ctx context.Context, id string, stale Credential, fence int64) (*Resolved, error) {
	fenceStr := strconv.FormatInt(fence, 10)
	// A refresh once started runs to its end even if the caller gives up:
	// the old refresh token is spent the moment the endpoint answers.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RefreshTimeout)
	defer cancel()
	defer rdb.ConnUnlock.Run(rctx, s.rdb, []string{s.lockKey(id)}, fenceStr)

	cur, _, err := s.load(rctx, id)
	if err != nil {
		return nil, err
	}
	if err := usable(&cur.Conn); err != nil {
		return nil, err
	}
	if s.fresh(cur, stale) {
		return cur, nil
	}
	cred, scopes, err := s.obtain(rctx, cur)
	if errors.Is(err, errRefused) {
		s.log.Warn("connection needs to be authorized again", "connection", id, "reason", Redact(err.Error()))
		if serr := s.states.Set(rctx, id, StatusNeedsReauth, "token refresh refused: "+Redact(err.Error())); serr != nil {
			s.log.Warn("connection status not stored", "connection", id, "error", serr)
		}
		return nil, fmt.Errorf("connection %s: %w", id, ErrNeedsReauth)
	}
	if err != nil {
		return nil, fmt.Errorf("connection %s: refresh: %s", id, Redact(err.Error()))
	}
	if len(scopes) > 0 {
		cur.Conn.Scopes = scopes
	}
	cur.Conn.ExpiresAt, cur.Conn.UpdatedAt = cred.ExpiresAt, s.now().UTC()
	meta, err := metaJSON(cur.Conn)
	if err != nil {
		return nil, err
	}
	sealed, err := s.seal(id, cred)
	if err != nil {
		return nil, err
	}
	ok, err := rdb.ConnFencedWrite.Run(rctx, s.rdb, []string{s.connKey(id), s.lockKey(id)}, fenceStr, meta, sealed).Int()
	if err != nil {
		return nil, fmt.Errorf("connection %s: store refreshed token: %w", id, err)
	}
	if ok != 1 {
		s.log.Error("refreshed token not stored: the refresh lock was lost", "connection", id, "fence", fence)
		return nil, fmt.Errorf("connection %s: refresh lock lost before the new token was stored", id)
	}
	s.log.Info("token refreshed", "connection", id, "fence", fence, "expires_at", cred.ExpiresAt)
	return &Resolved{Conn: cur.Conn, Cred: cred}, nil
}

// obtain gets a new credential for cur: a refresh-token grant, or for a
// location connection exchanged from an agency, a new exchange.
func (s *Store) obtain(ctx context.Context, cur *Resolved) (Credential, []string, error) {
	if cur.Conn.Parent != "" {
		return s.exchange(ctx, cur.Conn.App, cur.Conn.Parent, cur.Conn.CompanyID, cur.Conn.LocationID)
	}
	app, err := s.oauthApp(cur.Conn.App)
	if err != nil {
		return Credential{}, nil, err
	}
	if cur.Cred.RefreshToken == "" {
		return Credential{}, nil, fmt.Errorf("%w: no refresh token", errRefused)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := app.config(nil).TokenSource(ctx, &oauth2.Token{RefreshToken: cur.Cred.RefreshToken}).Token()
	if err != nil {
		return Credential{}, nil, tokenErr(err)
	}
	cred := credFromToken(tok)
	if cred.RefreshToken == cur.Cred.RefreshToken {
		// Rotation is expected; an endpoint that keeps the token is fine too.
		s.log.Debug("refresh token not rotated", "connection", cur.Conn.ID)
	}
	return cred, scopesOf(tok), nil
}

// tokenErr classifies a token endpoint failure without its body.
func tokenErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		if code == http.StatusBadRequest || code == http.StatusUnauthorized || code == http.StatusForbidden {
			return fmt.Errorf("%w: token endpoint answered %d", errRefused, code)
		}
		return fmt.Errorf("token endpoint answered %d", code)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("token endpoint: %v", ue.Err)
	}
	return errors.New(Redact(err.Error()))
}

// credFromToken reads an OAuth token; oauth2 computes its expiry from the
// clock at the answer, which is when it was issued.
func credFromToken(tok *oauth2.Token) Credential {
	return Credential{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.Expiry.UTC(),
		IssuedAt: time.Now().UTC()}
}

func scopesOf(tok *oauth2.Token) []string {
	s, _ := tok.Extra("scope").(string)
	return strings.Fields(s)
}

func extraString(tok *oauth2.Token, key string) string {
	switch v := tok.Extra(key).(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// LocationTokenRequest is one GHL agency-to-location token exchange (POST
// /oauth/locationToken, form-encoded companyId and locationId) made with
// the credential of the agency connection Agency.
type LocationTokenRequest struct {
	// App is the app (ghl) and Agency the agency connection.
	App, Agency string
	// URL is the exchange endpoint; Version its Version header.
	URL, Version          string
	CompanyID, LocationID string
}

// ErrGrantRefused marks an exchange the API refused for good (the agency
// connection's credential, or the request, is not accepted): only the user
// can fix it.
var ErrGrantRefused = errors.New("grant refused")

// Exchanger makes location token exchanges; engine/transport implements
// it, so an exchange waits on the rate limiter, renews a refused agency
// token once and classifies its failures like any other call (a refusal
// wraps ErrGrantRefused).
type Exchanger interface {
	ExchangeLocationToken(ctx context.Context, req LocationTokenRequest) ([]byte, error)
}

// UseExchanger sets what makes the store's location token exchanges. A
// transport resolves connections through the store, so it is set after
// both are made.
func (s *Store) UseExchanger(x Exchanger) { s.exchanger = x }

// exchange turns the agency connection parent's token into a location
// token (GHL's POST /oauth/locationToken) through the store's Exchanger.
func (s *Store) exchange(ctx context.Context, appID, parent, companyID, locationID string) (Credential, []string, error) {
	app, err := s.oauthApp(appID)
	if err != nil {
		return Credential{}, nil, err
	}
	if app.LocationTokenURL == "" {
		return Credential{}, nil, fmt.Errorf("app %s has no location token exchange", appID)
	}
	if s.exchanger == nil {
		return Credential{}, nil, fmt.Errorf("app %s: no location token exchange configured", appID)
	}
	p, err := s.Get(ctx, parent)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Credential{}, nil, fmt.Errorf("%w: agency connection %s: %v", errRefused, parent, err)
		}
		return Credential{}, nil, err
	}
	if companyID == "" {
		companyID = p.CompanyID
	}
	version := app.Version
	if version == "" {
		version = DefaultLocationTokenVersion
	}
	body, err := s.exchanger.ExchangeLocationToken(ctx, LocationTokenRequest{App: appID, Agency: parent, URL: app.LocationTokenURL,
		Version: version, CompanyID: companyID, LocationID: locationID})
	if errors.Is(err, ErrGrantRefused) {
		return Credential{}, nil, fmt.Errorf("%w: location token: %s", errRefused, Redact(err.Error()))
	}
	if err != nil {
		return Credential{}, nil, fmt.Errorf("location token: %s", Redact(err.Error()))
	}
	return s.locationCred(body)
}

// locationCred reads an exchange's answer.
func (s *Store) locationCred(body []byte) (Credential, []string, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.AccessToken == "" {
		return Credential{}, nil, errors.New("location token: no access_token in the answer")
	}
	cred := Credential{AccessToken: out.AccessToken}
	if out.ExpiresIn > 0 {
		cred.IssuedAt = s.now().UTC()
		cred.ExpiresAt = cred.IssuedAt.Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	return cred, strings.Fields(out.Scope), nil
}
