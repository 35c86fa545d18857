package sim

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// serveOAuth answers GHL's OAuth endpoints: the authorize page (approved at
// once), the token endpoint and the agency-to-location token exchange.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/oauth/chooselocation" && r.Method == http.MethodGet:
		s.authorize(w, r)
	case r.URL.Path == "/oauth/token" && r.Method == http.MethodPost:
		s.tokenEndpoint(w, r)
	case r.URL.Path == "/oauth/locationToken" && r.Method == http.MethodPost:
		s.locationToken(w, r)
	case r.URL.Path == "/oauth/installedLocations" && r.Method == http.MethodGet:
		s.installedLocations(w, r)
	default:
		notFound(w, r)
	}
}

// authorize approves an install at once and redirects back with a code.
// Query: client_id, redirect_uri, scope (space-separated), state, and two
// simulator extras: location_id (which sub-account to install on; default
// the first) and user_type=Company for an agency install.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirect := q.Get("client_id"), q.Get("redirect_uri")
	s.auth.mu.RLock()
	_, known := s.auth.clients[clientID]
	s.auth.mu.RUnlock()
	if !known {
		writeError(w, http.StatusBadRequest, "Invalid client_id")
		return
	}
	u, err := url.Parse(redirect)
	if redirect == "" || err != nil {
		writeError(w, http.StatusBadRequest, "Invalid redirect_uri")
		return
	}
	g := &grant{clientID: clientID, company: s.cfg.CompanyID, userType: "Location"}
	if sc := strings.Fields(q.Get("scope")); len(sc) > 0 {
		g.scopes = sc
	}
	if strings.EqualFold(q.Get("user_type"), "Company") {
		g.userType = "Company"
	} else {
		g.loc = q.Get("location_id")
		if g.loc == "" {
			if locs := s.Locations(); len(locs) > 0 {
				g.loc = locs[0]
			} else {
				g.loc = s.newID()
			}
		}
		s.ensureLocation(g.loc, g.company)
	}
	code := randToken("sim_code_", 16)
	s.auth.mu.Lock()
	s.auth.codes[code] = g
	s.auth.mu.Unlock()
	v := u.Query()
	v.Set("code", code)
	if st := q.Get("state"); st != "" {
		v.Set("state", st)
	}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func readForm(r *http.Request) (url.Values, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return nil, errJSONForm
	}
	return url.ParseQuery(string(b))
}

var errJSONForm = &formError{}

type formError struct{}

func (*formError) Error() string { return "body must be application/x-www-form-urlencoded" }

// tokenEndpoint is POST /oauth/token (form-encoded): authorization_code and
// refresh_token grants. Every refresh returns a new refresh token and spends
// the old one.
func (s *Server) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, ghlErrorBody(422, []string{err.Error()}, nil))
		return
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && clientID == "" {
		// Clients that send their credentials in the header (RFC 6749
		// 2.3.1) are accepted too.
		clientID, secret = u, p
	}
	s.auth.mu.RLock()
	want, known := s.auth.clients[clientID]
	s.auth.mu.RUnlock()
	if !known || want != secret {
		writeJSON(w, http.StatusUnauthorized, ghlErrorBody(401, "Invalid client credentials", nil))
		return
	}
	var g *grant
	switch f.Get("grant_type") {
	case "authorization_code":
		code := f.Get("code")
		s.auth.mu.Lock()
		g = s.auth.codes[code]
		delete(s.auth.codes, code)
		s.auth.mu.Unlock()
		if g == nil || g.clientID != clientID {
			writeError(w, http.StatusBadRequest, "Invalid grant: authorization code is invalid")
			return
		}
	case "refresh_token":
		rt := f.Get("refresh_token")
		s.auth.mu.Lock()
		g = s.auth.refresh[rt]
		if g != nil && g.clientID == clientID {
			delete(s.auth.refresh, rt)
		}
		s.auth.mu.Unlock()
		if g == nil || g.clientID != clientID {
			writeError(w, http.StatusBadRequest, "Invalid grant: refresh token is invalid")
			return
		}
		if g.loc != "" {
			if l := s.loc(g.loc); l == nil {
				writeError(w, http.StatusBadRequest, "Location is not active")
				return
			}
		}
	default:
		writeJSON(w, http.StatusUnprocessableEntity, ghlErrorBody(422, []string{"grant_type must be one of the following values: authorization_code, refresh_token"}, nil))
		return
	}
	tok, refresh := s.mint(g, true)
	writeJSON(w, http.StatusOK, s.tokenResponse(tok, refresh))
}

func (s *Server) tokenResponse(t *token, refresh string) map[string]any {
	ttl := time.Duration(0)
	if !t.expires.IsZero() {
		ttl = t.expires.Sub(s.now())
	}
	out := map[string]any{
		"access_token": t.access,
		"token_type":   "Bearer",
		"expires_in":   int(ttl.Seconds()),
		"scope":        t.scopeStr,
		"companyId":    t.company,
		"userId":       t.userID,
		"traceId":      traceID(),
	}
	if refresh != "" {
		out["refresh_token"] = refresh
	}
	if t.loc != "" {
		out["userType"] = "Location"
		out["locationId"] = t.loc
	} else {
		out["userType"] = "Company"
		out["approvedLocations"] = s.companyLocations(t.company)
	}
	return out
}

func (s *Server) companyLocations(company string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []string{}
	for _, id := range s.locOrder {
		if s.locations[id].company == company {
			out = append(out, id)
		}
	}
	return out
}

// locationToken is POST /oauth/locationToken: an agency token with
// oauth.write and a form body {companyId, locationId} gets a location token
// (no refresh token).
func (s *Server) locationToken(w http.ResponseWriter, r *http.Request) {
	t := s.bearerToken(r)
	if t == nil || t.revoked || (!t.expires.IsZero() && !s.now().Before(t.expires)) {
		writeError(w, http.StatusUnauthorized, msgInvalidJWT)
		return
	}
	if !s.cfg.AllowMissingVersion && r.Header.Get("Version") == "" {
		writeError(w, http.StatusBadRequest, msgVersion)
		return
	}
	if t.loc != "" {
		writeError(w, http.StatusUnauthorized, msgAuthClass)
		return
	}
	if !t.scopes["oauth.write"] {
		writeError(w, http.StatusUnauthorized, msgScope)
		return
	}
	f, err := readForm(r)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, ghlErrorBody(422, []string{err.Error()}, nil))
		return
	}
	company, locID := f.Get("companyId"), f.Get("locationId")
	if company == "" || locID == "" {
		writeJSON(w, http.StatusUnprocessableEntity, ghlErrorBody(422, []string{"companyId and locationId should not be empty"}, nil))
		return
	}
	l := s.loc(locID)
	if company != t.company || l == nil || l.company != company {
		writeError(w, http.StatusBadRequest, "Location not found for this company")
		return
	}
	var scopes []string
	if t.scopeStr != "" {
		scopes = strings.Split(t.scopeStr, " ")
	}
	lt, _ := s.mint(&grant{clientID: t.clientID, loc: locID, company: company, scopes: scopes}, false)
	out := s.tokenResponse(lt, "")
	delete(out, "userType")
	delete(out, "companyId")
	out["planId"] = ""
	writeJSON(w, http.StatusOK, out)
}

// installedLocations is GET /oauth/installedLocations for agency tokens.
func (s *Server) installedLocations(w http.ResponseWriter, r *http.Request) {
	t := s.bearerToken(r)
	if t == nil || t.revoked || t.loc != "" {
		writeError(w, http.StatusUnauthorized, msgInvalidJWT)
		return
	}
	var list []map[string]any
	for _, id := range s.companyLocations(t.company) {
		list = append(list, map[string]any{"_id": id, "name": "Location " + id, "isInstalled": true})
	}
	writeJSON(w, http.StatusOK, map[string]any{"locations": list, "count": len(list), "traceId": traceID()})
}
