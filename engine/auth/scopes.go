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

// ScopeWarning is a recipe trigger or step whose operation needs a scope its
// connection was not granted: the call would be refused with a 403.
type ScopeWarning struct {
	File       string
	Line       int
	Recipe     string
	Op         string
	Connection string
	Scope      string
}

func (w ScopeWarning) String() string {
	return fmt.Sprintf("%s:%d: warning: recipe %s: %s needs scope %s, which connection %s was not granted "+
		"(connect it again asking for %s: 'ghlflow connect install -name %s -recipes ...')",
		w.File, w.Line, w.Recipe, w.Op, w.Scope, w.Connection, w.Scope, w.Connection)
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
	check := func(r *catalog.Recipe, line int, opID, connection string) {
		c, op := byID[connection], cat.Op(opID)
		if c == nil || op == nil || op.Scope == "" || len(c.Scopes) == 0 || c.HasScope(op.Scope) {
			return
		}
		out = append(out, ScopeWarning{File: r.File, Line: line, Recipe: r.Name, Op: opID, Connection: connection, Scope: op.Scope})
	}
	for _, r := range recipes {
		check(r, r.Line, r.Trigger.Op, r.Trigger.Connection)
		for _, s := range r.Steps {
			check(r, s.Line, s.Op, s.Connection)
		}
	}
	return out
}
