// Package tenant holds the customers a hosted ghlflow serves. A tenant has
// an id, a name, labels, its connections by role (ghl → its location's
// connection, referralrock → its Referral Rock account, …), the recipes it
// has enabled and a status. A recipe names roles; the engine binds it to
// every tenant it applies to, and each binding (a subscription) keeps its
// own cursors, pauses and history.
//
// Tenants live in Redis (Store). Every change bumps a version counter and
// records the tenant's id at that version, so a process that has seen
// version v reads only the tenants changed since.
package tenant

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/ghlflow/ghlflow/catalog"
)

// DefaultID is the built-in tenant that runs recipes naming connection ids
// instead of roles: its roles are the connection ids themselves.
const DefaultID = "default"

// Statuses of a tenant.
const (
	// StatusActive tenants are polled.
	StatusActive = "active"
	// StatusPaused tenants keep their state but are not polled.
	StatusPaused = "paused"
	// StatusUninstalled tenants removed the app; they are not polled and
	// their state waits for `ghlflow tenant remove`.
	StatusUninstalled = "uninstalled"
)

// Statuses are the statuses a tenant can have.
func Statuses() []string { return []string{StatusActive, StatusPaused, StatusUninstalled} }

// Tenant is one customer.
type Tenant struct {
	ID     string            `json:"id"`
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Connections maps a role (an app id or a role a recipe declares) to
	// a connection id of the connection store or the static file.
	Connections map[string]string `json:"connections,omitempty"`
	// Recipes are the recipes the tenant has enabled; empty enables all.
	Recipes []string `json:"recipes,omitempty"`
	// Status is active, paused or uninstalled ("" reads as active).
	Status string `json:"status,omitempty"`
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Validate checks the tenant's id, status and roles.
func (t *Tenant) Validate() error {
	if !idRe.MatchString(t.ID) {
		return fmt.Errorf("tenant id %q: use letters, digits, '.', '-' and '_' (at most 128)", t.ID)
	}
	if t.ID == DefaultID {
		return fmt.Errorf("tenant id %q is the built-in tenant of recipes that name connections", t.ID)
	}
	switch t.Status {
	case "", StatusActive, StatusPaused, StatusUninstalled:
	default:
		return fmt.Errorf("tenant %s: unknown status %q (active, paused, uninstalled)", t.ID, t.Status)
	}
	for role, conn := range t.Connections {
		if role == "" || conn == "" {
			return fmt.Errorf("tenant %s: connection %q=%q: write ROLE=CONNECTION", t.ID, role, conn)
		}
	}
	return nil
}

// Default returns the built-in tenant of recipes that name connection ids.
func Default() *Tenant {
	return &Tenant{ID: DefaultID, Name: "recipes naming connections", Status: StatusActive}
}

// IsDefault reports whether t is the built-in tenant.
func (t *Tenant) IsDefault() bool { return t.ID == DefaultID }

// Active reports whether the tenant is polled.
func (t *Tenant) Active() bool { return t.Status == "" || t.Status == StatusActive }

// Connection returns the connection that fills role for the tenant. The
// default tenant's roles are connection ids.
func (t *Tenant) Connection(role string) (string, bool) {
	if t.IsDefault() {
		return role, true
	}
	c, ok := t.Connections[role]
	return c, ok
}

// Applies reports whether recipe r runs for the tenant: the default tenant
// runs the recipes that name connections; another tenant runs those that
// name roles when their label selector matches, it has enabled them and it
// has every role they use.
func (t *Tenant) Applies(c *catalog.Catalog, r *catalog.Recipe) bool {
	if t.IsDefault() {
		return !r.ForTenants(c)
	}
	if !r.ForTenants(c) {
		return false
	}
	for k, v := range r.Tenants {
		if t.Labels[k] != v {
			return false
		}
	}
	if len(t.Recipes) > 0 && !slices.Contains(t.Recipes, r.Name) {
		return false
	}
	return len(t.MissingRoles(r)) == 0
}

// MissingRoles returns the roles recipe r uses that the tenant has no
// connection for (why a recipe written for tenants does not run for it).
func (t *Tenant) MissingRoles(r *catalog.Recipe) []string {
	var out []string
	for _, role := range r.Uses() {
		if _, ok := t.Connections[role]; !ok {
			out = append(out, role)
		}
	}
	return out
}

// Selects reports whether the recipe's label selector and the tenant's
// enabled recipes let r run for the tenant, whatever its connections.
func (t *Tenant) Selects(c *catalog.Catalog, r *catalog.Recipe) bool {
	if t.IsDefault() || !r.ForTenants(c) {
		return false
	}
	for k, v := range r.Tenants {
		if t.Labels[k] != v {
			return false
		}
	}
	return len(t.Recipes) == 0 || slices.Contains(t.Recipes, r.Name)
}

// Data is what templates see as .tenant.
func (t *Tenant) Data() map[string]any {
	labels := make(map[string]any, len(t.Labels))
	for k, v := range t.Labels {
		labels[k] = v
	}
	return map[string]any{"id": t.ID, "name": t.Name, "labels": labels}
}

// Clone returns a deep copy.
func (t *Tenant) Clone() *Tenant {
	c := *t
	c.Labels = maps.Clone(t.Labels)
	c.Connections = maps.Clone(t.Connections)
	c.Recipes = slices.Clone(t.Recipes)
	return &c
}

// ParsePairs reads KEY=VALUE arguments (labels, ROLE=CONNECTION).
func ParsePairs(what string, args []string) (map[string]string, error) {
	out := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%s %q: write KEY=VALUE", what, a)
		}
		out[k] = v
	}
	return out, nil
}

// FormatPairs writes a map as sorted k=v pairs.
func FormatPairs(m map[string]string) string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
