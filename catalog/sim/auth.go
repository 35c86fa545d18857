package sim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// TokenSpec asks for a credential. For GHL (App "" or "ghl") a LocationID
// gives a location (sub-account) token and a CompanyID alone an agency token;
// for referralrock a public/private key pair; for referrizer an API token.
type TokenSpec struct {
	App        string
	LocationID string
	CompanyID  string
	// Scopes the token carries; nil means every scope of the app.
	Scopes []string
	// TTL is the access token's lifetime (0 = Config.TokenTTL).
	TTL time.Duration
	// Private makes a Private Integration token: no expiry, no refresh token.
	Private bool
	// ClientID binds the refresh token to an OAuth client (default: the
	// configured client).
	ClientID string
}

// Token is an issued credential.
type Token struct {
	App          string
	AccessToken  string
	RefreshToken string // GHL OAuth tokens only
	ExpiresAt    time.Time
	LocationID   string
	CompanyID    string
	UserType     string // "Location" or "Company"
	Scopes       []string
	// Username and Password are Referral Rock's public and private API keys.
	Username, Password string
}

// Authorization returns the value of the Authorization header for t.
func (t Token) Authorization() string {
	if t.App == "referralrock" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(t.Username+":"+t.Password))
	}
	return "Bearer " + t.AccessToken
}

// token is a credential the server knows.
type token struct {
	app      string
	access   string
	loc      string // location id; "" for agency tokens
	company  string
	scopes   map[string]bool // nil = all
	scopeStr string
	expires  time.Time // zero = never
	clientID string
	userID   string
	revoked  bool
}

// grant is what an authorization code or refresh token stands for.
type grant struct {
	clientID string
	loc      string
	company  string
	scopes   []string
	ttl      time.Duration
	userType string
}

type authStore struct {
	mu      sync.RWMutex
	access  map[string]*token // bearer tokens of every app
	basic   map[string]*token // "public:private" for Referral Rock
	refresh map[string]*grant
	codes   map[string]*grant
	clients map[string]string
}

func newAuthStore() *authStore {
	return &authStore{access: map[string]*token{}, basic: map[string]*token{}, refresh: map[string]*grant{},
		codes: map[string]*grant{}, clients: map[string]string{}}
}

func (a *authStore) registerClient(id, secret string) {
	a.mu.Lock()
	a.clients[id] = secret
	a.mu.Unlock()
}

// RegisterClient registers an OAuth client (a marketplace app) by id and
// secret.
func (s *Server) RegisterClient(id, secret string) { s.auth.registerClient(id, secret) }

func randToken(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// IssueToken issues a credential as if the user had installed the app or
// created a key; the location (or company) is created when new.
func (s *Server) IssueToken(spec TokenSpec) Token {
	app := spec.App
	if app == "" {
		app = "ghl"
	}
	company := spec.CompanyID
	if company == "" {
		company = s.cfg.CompanyID
	}
	if spec.LocationID != "" {
		s.ensureLocation(spec.LocationID, company)
	} else {
		s.ensureLocation(company, company)
	}
	switch app {
	case "referralrock":
		t := &token{app: app, loc: spec.LocationID, company: company}
		user, pass := randToken("rrpub_", 8), randToken("rrpriv_", 16)
		s.auth.mu.Lock()
		s.auth.basic[user+":"+pass] = t
		s.auth.mu.Unlock()
		return Token{App: app, LocationID: spec.LocationID, CompanyID: company, Username: user, Password: pass}
	case "referrizer":
		t := &token{app: app, access: randToken("rz_", 20), loc: spec.LocationID, company: company}
		s.auth.mu.Lock()
		s.auth.access[t.access] = t
		s.auth.mu.Unlock()
		return Token{App: app, AccessToken: t.access, LocationID: spec.LocationID, CompanyID: company}
	}
	g := &grant{clientID: spec.ClientID, loc: spec.LocationID, company: company, scopes: spec.Scopes, ttl: spec.TTL}
	if g.clientID == "" {
		g.clientID = s.cfg.ClientID
	}
	if spec.Private {
		g.ttl = -1
	}
	tok, refresh := s.mint(g, !spec.Private)
	return s.tokenOut(tok, refresh)
}

// mint creates an access token (and a refresh token when asked) for g.
func (s *Server) mint(g *grant, withRefresh bool) (*token, string) {
	scopes := g.scopes
	if scopes == nil {
		scopes = s.cat.App("ghl").Scopes
	}
	t := &token{app: "ghl", access: randToken("sim_at_", 24), loc: g.loc, company: g.company, clientID: g.clientID,
		scopes: map[string]bool{}, scopeStr: strings.Join(scopes, " "), userID: "simUser" + g.company[:min(13, len(g.company))]}
	for _, sc := range scopes {
		t.scopes[sc] = true
	}
	ttl := g.ttl
	if ttl == 0 {
		ttl = s.cfg.TokenTTL
	}
	if ttl > 0 {
		t.expires = s.now().Add(ttl)
	}
	refresh := ""
	s.auth.mu.Lock()
	s.auth.access[t.access] = t
	if withRefresh {
		refresh = randToken("sim_rt_", 24)
		s.auth.refresh[refresh] = g
	}
	s.auth.mu.Unlock()
	return t, refresh
}

func (s *Server) tokenOut(t *token, refresh string) Token {
	out := Token{App: "ghl", AccessToken: t.access, RefreshToken: refresh, ExpiresAt: t.expires,
		LocationID: t.loc, CompanyID: t.company, UserType: "Location"}
	if t.loc == "" {
		out.UserType = "Company"
	}
	if t.scopeStr != "" {
		out.Scopes = strings.Split(t.scopeStr, " ")
	}
	return out
}

// RevokeToken makes an access token (or a Referral Rock public key) invalid
// at once; it reports whether the token was known.
func (s *Server) RevokeToken(access string) bool {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	if t := s.auth.access[access]; t != nil {
		t.revoked = true
		return true
	}
	for k, t := range s.auth.basic {
		if strings.HasPrefix(k, access+":") {
			t.revoked = true
			return true
		}
	}
	return false
}

// Messages GHL answers auth failures with.
const (
	msgInvalidJWT = "Invalid JWT"
	msgExpired    = "Invalid token: access token is invalid"
	msgScope      = "The token is not authorized for this scope."
	msgAuthClass  = "This AuthClass is not yet supported by the IAM Service"
	msgLocation   = "The token does not have access to this location."
	msgVersion    = "Version header was not found"
	msgRRDenied   = "Authorization has been denied for this request."
	msgRZNoToken  = "Missing or invalid API token"
)

// bearerToken looks up the token of an Authorization: Bearer header.
func (s *Server) bearerToken(r *http.Request) *token {
	h := r.Header.Get("Authorization")
	if len(h) < 8 || !strings.EqualFold(h[:7], "bearer ") {
		return nil
	}
	s.auth.mu.RLock()
	t := s.auth.access[strings.TrimSpace(h[7:])]
	s.auth.mu.RUnlock()
	return t
}

// authenticate checks the caller's credential for the route's app and sets
// c.tok and c.loc.
func (s *Server) authenticate(c *call) *apiError {
	op := c.rt.op
	switch op.App {
	case "referralrock":
		user, pass, ok := c.r.BasicAuth()
		if !ok {
			return errf(http.StatusUnauthorized, msgRRDenied)
		}
		s.auth.mu.RLock()
		t := s.auth.basic[user+":"+pass]
		s.auth.mu.RUnlock()
		if t == nil || t.revoked {
			return errf(http.StatusUnauthorized, msgRRDenied)
		}
		c.tok, c.loc = t, s.ensureLocation(appLoc(t), t.company)
		return nil
	case "referrizer":
		t := s.bearerToken(c.r)
		if t == nil || t.revoked || t.app != "referrizer" {
			return errf(http.StatusUnauthorized, msgRZNoToken)
		}
		c.tok, c.loc = t, s.ensureLocation(appLoc(t), t.company)
		return nil
	}
	t := s.bearerToken(c.r)
	if t == nil || t.revoked || t.app != "ghl" {
		return errf(http.StatusUnauthorized, msgInvalidJWT)
	}
	if !t.expires.IsZero() && !c.now.Before(t.expires) {
		return errf(http.StatusUnauthorized, msgExpired)
	}
	if !s.cfg.AllowMissingVersion && c.r.Header.Get("Version") == "" {
		return errf(http.StatusBadRequest, msgVersion)
	}
	if op.Scope != "" && !t.scopes[op.Scope] {
		return errf(http.StatusUnauthorized, msgScope)
	}
	c.tok = t
	switch op.Token {
	case "location":
		if t.loc == "" {
			return errf(http.StatusUnauthorized, msgAuthClass)
		}
	case "agency":
		if t.loc != "" {
			return errf(http.StatusUnauthorized, msgAuthClass)
		}
	}
	named := c.param("locationId")
	if named == "" {
		named = c.query("locationId")
	}
	if named == "" {
		named = c.query("location_id")
	}
	if named == "" && c.r.Method != http.MethodGet {
		named = peekBodyLocation(c)
	}
	if t.loc != "" {
		if named != "" && named != t.loc {
			return errf(http.StatusForbidden, msgLocation)
		}
		c.loc = s.loc(t.loc)
		if c.loc == nil {
			c.loc = s.ensureLocation(t.loc, t.company)
		}
		return nil
	}
	// An agency token reaches the locations of its company.
	if named != "" {
		l := s.loc(named)
		if l == nil || l.company != t.company {
			return errf(http.StatusForbidden, msgLocation)
		}
		c.loc = l
		return nil
	}
	c.loc = s.ensureLocation(t.company, t.company)
	return nil
}

// peekBodyLocation reads locationId from a JSON or form body without
// parsing the rest.
func peekBodyLocation(c *call) string {
	if len(c.raw) == 0 {
		return ""
	}
	if strings.HasPrefix(c.r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		v, _ := url.ParseQuery(string(c.raw))
		return v.Get("locationId")
	}
	r := gjson.GetBytes(c.raw, "locationId")
	if r.Type == gjson.String {
		return r.Str
	}
	return ""
}

// appLoc is the location a referral-app credential stands for.
func appLoc(t *token) string {
	if t.loc != "" {
		return t.loc
	}
	return t.company
}
