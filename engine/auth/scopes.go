package auth

import (
	"slices"
	"sort"

	"github.com/ghlflow/ghlflow/catalog"
)

// RequiredScopes returns the OAuth scopes the recipes need from connection,
// sorted and without repeats: the scope of every trigger and step that runs
// through it. An install asks for exactly these (plus anything the user
// adds).
func RequiredScopes(cat *catalog.Catalog, recipes []*catalog.Recipe, connection string) []string {
	var out []string
	add := func(opID, conn string) {
		if conn != connection {
			return
		}
		if op := cat.Op(opID); op != nil && op.Scope != "" && !slices.Contains(out, op.Scope) {
			out = append(out, op.Scope)
		}
	}
	for _, r := range recipes {
		add(r.Trigger.Op, r.Trigger.Connection)
		for _, s := range r.Steps {
			add(s.Op, s.Connection)
		}
	}
	sort.Strings(out)
	return out
}

// MissingScopes returns the scopes of need that c was not granted; nil when
// c's scopes are unknown (a static token), since nothing can be said.
func MissingScopes(c *Connection, need []string) []string {
	if len(c.Scopes) == 0 {
		return nil
	}
	var out []string
	for _, s := range need {
		if !slices.Contains(c.Scopes, s) {
			out = append(out, s)
		}
	}
	return out
}
