package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// TenantView is a tenant as the API shows it.
type TenantView struct {
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels"`
	Status      string            `json:"status"`
	Connections map[string]string `json:"connections"`
	Recipes     []string          `json:"recipes"`
	// Subscriptions counts the tenant's subscriptions in force.
	Subscriptions int `json:"subscriptions"`
}

func (a *API) tenantView(t *tenant.Tenant) TenantView {
	v := TenantView{ID: t.ID, Name: t.Name, Labels: t.Labels, Status: t.Status, Connections: t.Connections, Recipes: t.Recipes}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.Connections == nil {
		v.Connections = map[string]string{}
	}
	if v.Recipes == nil {
		v.Recipes = []string{}
	}
	if v.Status == "" {
		v.Status = tenant.StatusActive
	}
	for _, s := range a.cfg.Subscriptions.All() {
		if s.Tenant.ID == t.ID {
			v.Subscriptions++
		}
	}
	return v
}

// tenant reads tenant id for key k: another tenant's, or none, answers
// 404.
func (a *API) tenant(w http.ResponseWriter, r *http.Request, k apikey.Key, id string) (*tenant.Tenant, bool) {
	if !k.Operator() && k.Tenant != id {
		notFound(w, "tenant", id)
		return nil, false
	}
	t, err := a.tenants.Get(r.Context(), id)
	if errors.Is(err, tenant.ErrNotFound) {
		notFound(w, "tenant", id)
		return nil, false
	}
	if err != nil {
		a.internal(w, r, err)
		return nil, false
	}
	return t, true
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	status, ok := enumFilter(w, r, "status", tenant.Statuses())
	if !ok {
		return
	}
	ts, _, err := a.tenants.List(r.Context())
	if err != nil {
		a.internal(w, r, err)
		return
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	label := r.URL.Query().Get("label")
	out := []TenantView{}
	for _, t := range ts {
		if !k.Operator() && t.ID != k.Tenant {
			continue
		}
		v := a.tenantView(t)
		if status != "" && v.Status != status {
			continue
		}
		if label != "" && !hasLabel(v.Labels, label) {
			continue
		}
		out = append(out, v)
	}
	if l, ok := page(w, r, out); ok {
		writeJSON(w, http.StatusOK, l)
	}
}

func hasLabel(labels map[string]string, kv string) bool {
	m, err := tenant.ParsePairs("label", []string{kv})
	if err != nil {
		return false
	}
	for k, v := range m {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TenantCreate is the body of a tenant creation.
type TenantCreate struct {
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Status      string            `json:"status,omitempty"`
	Connections map[string]string `json:"connections,omitempty"`
	Recipes     []string          `json:"recipes,omitempty"`
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request, _ apikey.Key) {
	var in TenantCreate
	if !decode(w, r, &in) {
		return
	}
	t := &tenant.Tenant{ID: in.ID, Name: in.Name, Labels: in.Labels, Status: in.Status, Connections: in.Connections, Recipes: in.Recipes}
	if err := t.Validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_tenant", err.Error(), "id")
		return
	}
	if !a.knownConnections(w, r, t.ID, t.Connections) {
		return
	}
	if _, err := a.tenants.Get(r.Context(), t.ID); err == nil {
		writeError(w, http.StatusConflict, "exists", "tenant "+t.ID+" exists", "id")
		return
	}
	if err := a.tenants.Put(r.Context(), t); err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.tenantView(t))
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	if t, ok := a.tenant(w, r, k, r.PathValue("id")); ok {
		writeJSON(w, http.StatusOK, a.tenantView(t))
	}
}

// knownConnections answers 422 and returns false when a connection of
// conns (role → connection id) is neither stored nor static: the tenant's
// polls would all fail.
func (a *API) knownConnections(w http.ResponseWriter, r *http.Request, id string, conns map[string]string) bool {
	err := auth.CheckConnections(r.Context(), a.cfg.Redis, a.cfg.Prefix, a.cfg.StaticConnections, conns)
	var unknown *auth.UnknownConnectionError
	switch {
	case errors.As(err, &unknown):
		writeError(w, http.StatusUnprocessableEntity, "unknown_connection", fmt.Sprintf("unknown connection %s: "+
			"in neither the connection store nor the server's static connections (known: %s); store it with POST %s/tenants/%s/connections, "+
			"start an OAuth install with POST %s/tenants/%s/connections:install, or add it to the connections file the server runs with",
			unknown.List(), auth.KnownList(unknown.Known, 20), Base, id, Base, id), "connections."+unknown.Roles[0])
		return false
	case err != nil:
		a.internal(w, r, err)
		return false
	}
	return true
}

// TenantPatch changes a tenant: a label set to "" is deleted; a
// connection (role → connection id) set to "" unbinds the role, leaving
// the connection stored (DELETE …/connections/{role} deletes it).
type TenantPatch struct {
	Name        *string           `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Status      *string           `json:"status,omitempty"`
	Connections map[string]string `json:"connections,omitempty"`
}

func (a *API) patchTenant(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	var in TenantPatch
	if !decode(w, r, &in) {
		return
	}
	if in.Name != nil {
		t.Name = *in.Name
	}
	for key, v := range in.Labels {
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		if v == "" {
			delete(t.Labels, key)
			continue
		}
		t.Labels[key] = v
	}
	if in.Status != nil {
		t.Status = *in.Status
	}
	bound := map[string]string{}
	for role, id := range in.Connections {
		if role == "" {
			writeError(w, http.StatusUnprocessableEntity, "invalid_tenant", "a connection's role is empty: write {\"ROLE\": \"CONNECTION\"}", "connections")
			return
		}
		if t.Connections == nil {
			t.Connections = map[string]string{}
		}
		if id == "" {
			delete(t.Connections, role)
			continue
		}
		t.Connections[role] = id
		bound[role] = id
	}
	if err := t.Validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_tenant", err.Error(), "status")
		return
	}
	if !a.knownConnections(w, r, t.ID, bound) {
		return
	}
	if err := a.tenants.Put(r.Context(), t); err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.tenantView(t))
}

// TenantRemoved says what deleting a tenant deleted.
type TenantRemoved struct {
	ID            string `json:"id"`
	Subscriptions int    `json:"subscriptions"`
	Keys          int    `json:"keys"`
	Tasks         int    `json:"tasks"`
	Connections   int    `json:"connections"`
}

func (a *API) deleteTenant(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	rep, err := engine.RemoveTenant(r.Context(), a.cfg.Redis, a.cfg.Prefix, t.ID)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TenantRemoved{ID: t.ID, Subscriptions: rep.Subscriptions, Keys: rep.Keys, Tasks: rep.Tasks,
		Connections: rep.Connections})
}

// KeyView is an API key as lists show it (never the key).
type KeyView struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant,omitempty"`
	Name    string `json:"name,omitempty"`
	Created string `json:"created"`
}

// NewKey is a key just made: the only response that carries it.
type NewKey struct {
	KeyView
	Key string `json:"key"`
}

// KeyCreate names a new key.
type KeyCreate struct {
	Name string `json:"name,omitempty"`
}

func keyView(k apikey.Key) KeyView {
	return KeyView{ID: k.ID, Tenant: k.Tenant, Name: k.Name, Created: k.Created.Format("2006-01-02T15:04:05Z07:00")}
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	ks, err := a.cfg.Keys.List(r.Context(), t.ID)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out := make([]KeyView, len(ks))
	for i, key := range ks {
		out[i] = keyView(key)
	}
	if l, ok := page(w, r, out); ok {
		writeJSON(w, http.StatusOK, l)
	}
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	var in KeyCreate
	if !decode(w, r, &in) {
		return
	}
	secret, key, err := a.cfg.Keys.Create(r.Context(), t.ID, in.Name)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, NewKey{KeyView: keyView(key), Key: secret})
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	t, ok := a.tenant(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	err := a.cfg.Keys.Revoke(r.Context(), t.ID, r.PathValue("key"))
	if errors.Is(err, apikey.ErrNotFound) {
		notFound(w, "key", r.PathValue("key"))
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
