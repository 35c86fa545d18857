package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// ConnectionView is a tenant's connection of one role: its metadata and
// status, never its credential.
type ConnectionView struct {
	Role       string    `json:"role"`
	ID         string    `json:"id"`
	App        string    `json:"app,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	LocationID string    `json:"location_id,omitempty"`
	CompanyID  string    `json:"company_id,omitempty"`
	Scopes     []string  `json:"scopes,omitempty"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}

// ConnectionMissing is the status of a role whose connection is neither
// in the store nor in the static file (an OAuth install not finished).
const ConnectionMissing = "missing"

// ConnectionStatic is the status of a role whose connection is one of the
// static file's (its credential is the server's environment's).
const ConnectionStatic = "static"

// staticStatus is the status of static connection id: ConnectionStatic,
// or the engine's pause of it (needs_reauth after a refused token, paused)
// with its reason.
func (a *API) staticStatus(ctx context.Context, id string) (status, reason string, err error) {
	st, err := connstate.New(a.cfg.Redis, a.cfg.Prefix).Get(ctx, id)
	if err != nil {
		return ConnectionStatic, "", err
	}
	if st.InForce() {
		return ConnectionStatic, "", nil
	}
	return st.Status, auth.Redact(st.Reason), nil
}

func (a *API) connectionView(r *http.Request, role, id string) (ConnectionView, error) {
	v := ConnectionView{Role: role, ID: id, Status: ConnectionMissing}
	c, err := auth.GetConnection(r.Context(), a.cfg.Redis, a.cfg.Prefix, id)
	if errors.Is(err, auth.ErrNotFound) {
		for _, s := range a.cfg.StaticConnections {
			if s.ID == id {
				v.App, v.Kind, v.LocationID, v.CompanyID, v.Scopes = s.App, s.Kind, s.LocationID, s.CompanyID, s.Scopes
				var serr error
				v.Status, v.Reason, serr = a.staticStatus(r.Context(), id)
				return v, serr
			}
		}
		return v, nil // missing: an install not finished
	}
	if err != nil {
		return v, err
	}
	v.App, v.Kind, v.LocationID, v.CompanyID, v.Scopes = c.App, c.Kind, c.LocationID, c.CompanyID, c.Scopes
	v.Status, v.Reason, v.ExpiresAt, v.UpdatedAt = c.Status, auth.Redact(c.Reason), c.ExpiresAt, c.UpdatedAt
	return v, nil
}

func (a *API) listConnections(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	roles := make([]string, 0, len(t.Connections))
	for role := range t.Connections {
		roles = append(roles, role)
	}
	sort.Strings(roles)
	out := make([]ConnectionView, 0, len(roles))
	for _, role := range roles {
		v, err := a.connectionView(r, role, t.Connections[role])
		if err != nil {
			a.internal(w, r, err)
			return
		}
		out = append(out, v)
	}
	if l, ok := page(w, r, out); ok {
		writeJSON(w, http.StatusOK, l)
	}
}

// ConnectionCreate stores a credential for a tenant's role: a token
// (kind private or apikey) or basic keys (kind basic).
type ConnectionCreate struct {
	Role       string `json:"role"`
	App        string `json:"app"`
	Kind       string `json:"kind"`
	Token      string `json:"token,omitempty"`
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"`
	LocationID string `json:"location_id,omitempty"`
}

// connectionID is the id of the connection a tenant stores for role.
func connectionID(tenantID, role string) string { return tenantID + "-" + role }

// storeTenant is the tenant of the path for a handler that stores
// credentials: false (and the answer written) when the key may not see
// it or the server has no connection store.
func (a *API) storeTenant(w http.ResponseWriter, r *http.Request, k apikey.Key) (*tenant.Tenant, bool) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return nil, false
	}
	if a.cfg.Connections == nil {
		writeError(w, http.StatusNotImplemented, "no_store", "this server has no connection store (no secret key)", "")
		return nil, false
	}
	return t, true
}

func (a *API) createConnection(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.storeTenant(w, r, k)
	if !ok {
		return
	}
	var in ConnectionCreate
	if !decode(w, r, &in) {
		return
	}
	cred, field, msg := credentialOf(in)
	if msg == "" && a.cfg.Catalog.App(in.App) == nil {
		field, msg = "app", "unknown app "+in.App
	}
	if msg != "" {
		writeError(w, http.StatusUnprocessableEntity, "invalid_connection", msg, field)
		return
	}
	id := connectionID(t.ID, in.Role)
	c := auth.Connection{ID: id, App: in.App, Kind: in.Kind, LocationID: in.LocationID}
	if err := a.cfg.Connections.Put(r.Context(), c, cred); err != nil {
		a.internal(w, r, err)
		return
	}
	if !a.bindRole(w, r, t.ID, in.Role, id) {
		return
	}
	v, err := a.connectionView(r, in.Role, id)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

// credentialOf checks a connection body and returns its credential, or
// the field at fault and why.
func credentialOf(in ConnectionCreate) (auth.Credential, string, string) {
	switch {
	case in.Role == "":
		return auth.Credential{}, "role", "role is required (the role recipes name, e.g. ghl)"
	case in.App == "":
		return auth.Credential{}, "app", "app is required"
	}
	switch in.Kind {
	case auth.KindPrivate, auth.KindAPIKey:
		if in.Token == "" {
			return auth.Credential{}, "token", "token is required for kind " + in.Kind
		}
		return auth.Credential{AccessToken: in.Token}, "", ""
	case auth.KindBasic:
		if in.Username == "" || in.Password == "" {
			return auth.Credential{}, "username", "username and password are required for kind basic"
		}
		return auth.Credential{Username: in.Username, Password: in.Password}, "", ""
	}
	return auth.Credential{}, "kind", "kind is private, apikey or basic (OAuth: connections:install)"
}

// bindRole points the tenant's role at connection id.
func (a *API) bindRole(w http.ResponseWriter, r *http.Request, tenantID, role, id string) bool {
	_, err := a.tenants.Update(r.Context(), tenantID, func(t *tenant.Tenant) error {
		if t.Connections == nil {
			t.Connections = map[string]string{}
		}
		t.Connections[role] = id
		return nil
	})
	if err != nil {
		a.internal(w, r, err)
		return false
	}
	return true
}

// InstallCreate asks for an OAuth install link for a tenant's role.
type InstallCreate struct {
	Role   string   `json:"role"`
	App    string   `json:"app,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

// InstallLink is where to send the tenant's user to approve the install.
type InstallLink struct {
	URL        string `json:"url"`
	Connection string `json:"connection"`
}

func (a *API) installLink(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.storeTenant(w, r, k)
	if !ok {
		return
	}
	var in InstallCreate
	if !decode(w, r, &in) {
		return
	}
	if in.Role == "" {
		writeError(w, http.StatusUnprocessableEntity, "invalid_install", "role is required", "role")
		return
	}
	if in.App == "" {
		in.App = "ghl"
	}
	id := connectionID(t.ID, in.Role)
	u, err := a.cfg.Connections.StartInstall(r.Context(), auth.InstallRequest{App: in.App, Name: id, Scopes: in.Scopes})
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "no_oauth", auth.Redact(err.Error()), "app")
		return
	}
	if !a.bindRole(w, r, t.ID, in.Role, id) {
		return
	}
	writeJSON(w, http.StatusCreated, InstallLink{URL: u, Connection: id})
}

func (a *API) deleteConnection(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	role := r.PathValue("role")
	id, ok := t.Connections[role]
	if !ok {
		notFound(w, "connection of role", role)
		return
	}
	if id == connectionID(t.ID, role) {
		// Only a connection the tenant stored is deleted with it.
		if err := auth.DeleteConnection(r.Context(), a.cfg.Redis, a.cfg.Prefix, id); err != nil && !errors.Is(err, auth.ErrNotFound) {
			a.internal(w, r, err)
			return
		}
	}
	if _, err := a.tenants.Update(r.Context(), t.ID, func(t *tenant.Tenant) error {
		delete(t.Connections, role)
		return nil
	}); err != nil {
		a.internal(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
