package auth

import (
	"fmt"
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
	eachCall(cat, recipes, func(_ *catalog.Recipe, _ int, op *catalog.Operation, conn string) {
		if conn == connection && op.Scope != "" && !slices.Contains(out, op.Scope) {
			out = append(out, op.Scope)
		}
	})
	sort.Strings(out)
	return out
}

// eachCall calls f for the trigger and every step of recipes: the recipe,
// the line, the operation and the connection it is called through.
func eachCall(cat *catalog.Catalog, recipes []*catalog.Recipe, f func(r *catalog.Recipe, line int, op *catalog.Operation, connection string)) {
	for _, r := range recipes {
		if op := cat.Op(r.Trigger.Op); op != nil {
			f(r, r.Line, op, r.Trigger.Connection)
		}
		for _, s := range r.Steps {
			if op := cat.Op(s.Op); op != nil {
				f(r, s.Line, op, s.Connection)
			}
		}
	}
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

// ScopeWarning is a recipe trigger or step whose operation needs a scope its
// connection was not granted: the call would be refused with a 403.
type ScopeWarning struct {
	File       string
	Line       int
	Recipe     string
	Op         string
	Connection string
	// Kind is the connection's kind, which decides the fix.
	Kind  string
	Scope string
}

func (w ScopeWarning) String() string {
	return fmt.Sprintf("%s:%d: warning: recipe %s: %s needs scope %s, which connection %s was not granted (%s)",
		w.File, w.Line, w.Recipe, w.Op, w.Scope, w.Connection, w.Fix())
}

// Fix says how to grant the scope: an OAuth install is made again asking
// for it; a token's scopes are chosen where the token is made, and listed
// in the connections file.
func (w ScopeWarning) Fix() string {
	if w.Kind == KindOAuth {
		return fmt.Sprintf("install it again asking for %s: 'ghlflow connect install --name %s --recipes ...'", w.Scope, w.Connection)
	}
	return fmt.Sprintf("grant %s to its token where the token is made, then add it to the scopes: list of %s in the connections file", w.Scope, w.Connection)
}

// CheckScopes returns a warning for every trigger and step of recipes whose
// operation's scope its connection lacks. Connections whose scopes are
// unknown (static tokens) and connections not in conns are not checked.
func CheckScopes(cat *catalog.Catalog, recipes []*catalog.Recipe, conns []Connection) []ScopeWarning {
	byID := make(map[string]*Connection, len(conns))
	for i := range conns {
		byID[conns[i].ID] = &conns[i]
	}
	var out []ScopeWarning
	eachCall(cat, recipes, func(r *catalog.Recipe, line int, op *catalog.Operation, connection string) {
		if c := byID[connection]; c != nil && !c.HasScope(op.Scope) {
			out = append(out, ScopeWarning{File: r.File, Line: line, Recipe: r.Name, Op: op.ID, Connection: connection, Kind: c.Kind, Scope: op.Scope})
		}
	})
	return out
}
