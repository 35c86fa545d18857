package auth

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ghlflow/ghlflow/catalog"
)

// Multi resolves a connection from the first source that knows it: e.g. a
// static connections file, then the Redis store.
type Multi []Source

// Resolve asks each source in turn.
func (m Multi) Resolve(ctx context.Context, id string) (*Resolved, error) {
	for _, s := range m {
		r, err := s.Resolve(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return r, err
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
}

// Renew asks the source that knows the connection.
func (m Multi) Renew(ctx context.Context, id string, stale Credential) (*Resolved, error) {
	for _, s := range m {
		r, err := s.Renew(ctx, id, stale)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return r, err
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
}

// Environment variables of the GHL OAuth client.
const (
	EnvGHLClientID     = "GHLFLOW_GHL_CLIENT_ID"
	EnvGHLClientSecret = "GHLFLOW_GHL_CLIENT_SECRET"
)

// OAuthFromEnv returns the OAuth clients configured in the environment
// (GHLFLOW_GHL_CLIENT_ID and GHLFLOW_GHL_CLIENT_SECRET), keyed by app id,
// for StoreConfig.OAuth; empty when none is set. baseURL replaces the app's
// URLs ("" = the catalog's); redirectURL is ghlflow's /oauth/callback.
func OAuthFromEnv(cat *catalog.Catalog, baseURL, redirectURL string) (map[string]*OAuthApp, error) {
	out := map[string]*OAuthApp{}
	id, secret := os.Getenv(EnvGHLClientID), os.Getenv(EnvGHLClientSecret)
	if id == "" && secret == "" {
		return out, nil
	}
	app := cat.App("ghl")
	if app == nil {
		return nil, errors.New("catalog has no ghl app")
	}
	a, err := NewOAuthApp(app, baseURL, id, secret, redirectURL)
	if err != nil {
		return nil, err
	}
	out["ghl"] = a
	return out, nil
}
