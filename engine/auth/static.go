package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/ghlflow/ghlflow/catalog"
)

// StaticEntry is one connection of a static connections file. Secrets are
// best read from the environment (TokenEnv, PasswordEnv); inline Token and
// Password are accepted for local tests.
type StaticEntry struct {
	ID         string   `yaml:"id"`
	App        string   `yaml:"app"`
	Kind       string   `yaml:"kind,omitempty"`
	LocationID string   `yaml:"location_id,omitempty"`
	CompanyID  string   `yaml:"company_id,omitempty"`
	Scopes     []string `yaml:"scopes,omitempty"`
	BaseURL    string   `yaml:"base_url,omitempty"`
	// Token or TokenEnv (the name of an environment variable) give a bearer
	// token.
	Token    string `yaml:"token,omitempty"`
	TokenEnv string `yaml:"token_env,omitempty"`
	// Username with Password or PasswordEnv give HTTP Basic credentials.
	Username    string `yaml:"username,omitempty"`
	UsernameEnv string `yaml:"username_env,omitempty"`
	Password    string `yaml:"password,omitempty"`
	PasswordEnv string `yaml:"password_env,omitempty"`
}

// Static is a fixed set of connections with long-lived credentials (Private
// Integration tokens, API keys), read from a file or built in code. It
// cannot refresh anything. It is safe for concurrent use.
type Static struct {
	conns map[string]*Resolved
}

// LoadStaticConnections reads a YAML file holding a list of StaticEntry
// (either the bare list or under a "connections:" key). Tokens named by
// token_env are read from the environment now; a missing one is an error.
func LoadStaticConnections(path string) (*Static, error) {
	entries, err := readStaticEntries(path)
	if err != nil {
		return nil, err
	}
	s, err := NewStatic(entries...)
	if err != nil {
		return nil, fmt.Errorf("static connections %s: %w", path, err)
	}
	return s, nil
}

// LoadStaticMetadata reads a static connections file as
// LoadStaticConnections does, but for its connections' metadata only (id,
// app, kind, location, scopes): the secrets its entries name are not read,
// so the variables of token_env, username_env and password_env need not be
// set. Checks of recipes and tenants against the file use it; running
// needs LoadStaticConnections.
func LoadStaticMetadata(path string) ([]Connection, error) {
	entries, err := readStaticEntries(path)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]Connection, 0, len(entries))
	for i, e := range entries {
		if err := e.check(seen); err != nil {
			return nil, fmt.Errorf("static connections %s: connection %d (%s): %w", path, i+1, e.ID, err)
		}
		if !e.namesCredential() {
			return nil, fmt.Errorf("static connections %s: connection %d (%s): %w", path, i+1, e.ID, errNoStaticCredential)
		}
		basic := e.Username != "" || e.UsernameEnv != "" || e.Password != "" || e.PasswordEnv != ""
		out = append(out, e.connection(basic))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// readStaticEntries reads the entries of a static connections file.
func readStaticEntries(path string) ([]StaticEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("static connections: %w", err)
	}
	var entries []StaticEntry
	// Read the way recipes are: an unknown field (a misspelt location_id)
	// is an error with its place, not a connection quietly without it.
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-")) {
		err = catalog.DecodeYAML(path, b, &entries)
	} else {
		var doc struct {
			Connections []StaticEntry `yaml:"connections"`
		}
		err = catalog.DecodeYAML(path, b, &doc)
		entries = doc.Connections
	}
	if err != nil {
		return nil, fmt.Errorf("static connections:\n%w", err)
	}
	return entries, nil
}

// NewStatic builds a Static from entries.
func NewStatic(entries ...StaticEntry) (*Static, error) {
	s := &Static{conns: map[string]*Resolved{}}
	seen := map[string]bool{}
	for i, e := range entries {
		if err := e.check(seen); err != nil {
			return nil, fmt.Errorf("connection %d (%s): %w", i+1, e.ID, err)
		}
		if err := s.add(e); err != nil {
			return nil, fmt.Errorf("connection %d (%s): %w", i+1, e.ID, err)
		}
	}
	return s, nil
}

var errNoStaticCredential = errors.New("no credential: set token, token_env, or username and password")

// check wants an id not in seen (which it adds) and an app.
func (e StaticEntry) check(seen map[string]bool) error {
	if e.ID == "" {
		return fmt.Errorf("id is required")
	}
	if e.App == "" {
		return fmt.Errorf("app is required")
	}
	if seen[e.ID] {
		return fmt.Errorf("id %q is used twice", e.ID)
	}
	seen[e.ID] = true
	return nil
}

// namesCredential reports whether e gives a credential, inline or by the
// name of an environment variable.
func (e StaticEntry) namesCredential() bool {
	return e.Token != "" || e.TokenEnv != "" || e.Username != "" || e.UsernameEnv != "" || e.Password != "" || e.PasswordEnv != ""
}

// connection is e's metadata; basic says its credential is HTTP Basic.
func (e StaticEntry) connection(basic bool) Connection {
	kind := e.Kind
	if kind == "" {
		switch {
		case basic:
			kind = KindBasic
		case e.App == "ghl":
			kind = KindPrivate
		default:
			kind = KindAPIKey
		}
	}
	return Connection{ID: e.ID, App: e.App, Kind: kind, LocationID: e.LocationID, CompanyID: e.CompanyID,
		Scopes: e.Scopes, BaseURL: e.BaseURL, Status: StatusOK}
}

func (s *Static) add(e StaticEntry) error {
	env := func(field, name string) (string, error) {
		if name == "" {
			return "", nil
		}
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", field, name)
		}
		return strings.TrimSpace(v), nil
	}
	var cred Credential
	var err error
	cred.AccessToken = e.Token
	if e.TokenEnv != "" {
		if cred.AccessToken, err = env("token_env", e.TokenEnv); err != nil {
			return err
		}
	}
	cred.Username, cred.Password = e.Username, e.Password
	if e.UsernameEnv != "" {
		if cred.Username, err = env("username_env", e.UsernameEnv); err != nil {
			return err
		}
	}
	if e.PasswordEnv != "" {
		if cred.Password, err = env("password_env", e.PasswordEnv); err != nil {
			return err
		}
	}
	if cred.Empty() {
		return errNoStaticCredential
	}
	s.conns[e.ID] = &Resolved{Conn: e.connection(cred.Username != "" || cred.Password != ""), Cred: cred}
	return nil
}

// Resolve returns the connection called id.
func (s *Static) Resolve(_ context.Context, id string) (*Resolved, error) {
	r := s.conns[id]
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	out := *r
	return &out, nil
}

// Renew always fails: static credentials cannot be refreshed.
func (s *Static) Renew(_ context.Context, id string, _ Credential) (*Resolved, error) {
	if s.conns[id] == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return nil, fmt.Errorf("connection %q: %w", id, ErrNoRefresh)
}

// List returns the connections, sorted by id.
func (s *Static) List() []Connection {
	out := make([]Connection, 0, len(s.conns))
	for _, r := range s.conns {
		out = append(out, r.Conn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
