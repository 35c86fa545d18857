// Package auth keeps the connections ghlflow calls apps through: who they
// stand for (app, location or company, scopes, status), their credentials
// sealed at rest, the OAuth 2.0 install flow and token refresh serialized
// across every process that shares the Redis store.
package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"time"

	"github.com/ghlflow/ghlflow/engine/connstate"
)

// Kinds of connection: how its credential was obtained and is sent.
const (
	KindOAuth   = "oauth"   // OAuth 2.0 install; bearer access token, rotated refresh token
	KindPrivate = "private" // a GHL Private Integration token, sent as a bearer token
	KindAPIKey  = "apikey"  // an API token sent as a bearer token (Referrizer)
	KindBasic   = "basic"   // HTTP Basic with a user name and password (Referral Rock keys)
)

// Statuses of a connection (its connstate record).
const (
	StatusOK          = connstate.OK          // calls may go out
	StatusNeedsReauth = connstate.NeedsReauth // the credential was refused; a user must connect again
	StatusPaused      = connstate.Paused      // paused on purpose; Reason says why
)

// Errors a connection lookup returns.
var (
	// ErrNotFound means no connection has the id asked for.
	ErrNotFound = errors.New("connection not found")
	// ErrNeedsReauth means the connection's credential was refused and
	// cannot be renewed without the user.
	ErrNeedsReauth = errors.New("connection needs to be authorized again")
	// ErrPaused means the connection is paused.
	ErrPaused = errors.New("connection is paused")
	// ErrNoRefresh means the credential cannot be renewed by ghlflow (a
	// static or private token).
	ErrNoRefresh = errors.New("credential cannot be refreshed")
)

// Connection is what ghlflow knows about one connection, secrets aside.
type Connection struct {
	// ID names the connection; recipes refer to it.
	ID string `json:"id" yaml:"id"`
	// App is the catalog app id: ghl, referralrock, referrizer.
	App string `json:"app" yaml:"app"`
	// Kind is oauth, private, apikey or basic.
	Kind string `json:"kind" yaml:"kind"`
	// LocationID and CompanyID say whom the credential stands for (a GHL
	// sub-account or agency; for referral apps the account, if known).
	LocationID string `json:"location_id,omitempty" yaml:"location_id,omitempty"`
	CompanyID  string `json:"company_id,omitempty" yaml:"company_id,omitempty"`
	// UserType is GHL's Location or Company for OAuth tokens.
	UserType string `json:"user_type,omitempty" yaml:"user_type,omitempty"`
	// Scopes are the OAuth scopes granted (empty when unknown).
	Scopes []string `json:"scopes,omitempty" yaml:"scopes,omitempty"`
	// BaseURL overrides the app's base URL (a simulator, a white label).
	BaseURL string `json:"base_url,omitempty" yaml:"base_url,omitempty"`
	// Parent is the agency connection a location connection was exchanged
	// from; its token is renewed through the parent.
	Parent string `json:"parent,omitempty" yaml:"parent,omitempty"`
	// Status is ok, needs_reauth or paused; Reason says why when not ok.
	// Both are read from the connection's connstate record (the one the
	// engine and `ghlflow connect` share), not stored with the connection.
	Status string `json:"status" yaml:"status,omitempty"`
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	// ExpiresAt is when the access token expires (zero = never or unknown).
	ExpiresAt time.Time `json:"expires_at,omitzero" yaml:"-"`
	// CreatedAt and UpdatedAt are bookkeeping times.
	CreatedAt time.Time `json:"created_at,omitzero" yaml:"-"`
	UpdatedAt time.Time `json:"updated_at,omitzero" yaml:"-"`
}

// HasScope reports whether the connection was granted scope; a connection
// whose scopes are unknown is assumed to have it.
func (c *Connection) HasScope(scope string) bool {
	return scope == "" || len(c.Scopes) == 0 || slices.Contains(c.Scopes, scope)
}

// Credential is the secret part of a connection: what goes in the
// Authorization header. Its String and GoString hide the secrets, so it is
// safe to format by accident.
type Credential struct {
	// AccessToken is the bearer token (OAuth, private, apikey).
	AccessToken string `json:"access_token,omitempty"`
	// RefreshToken renews an OAuth access token; GHL rotates it on every
	// refresh.
	RefreshToken string `json:"refresh_token,omitempty"`
	// ExpiresAt is the access token's expiry (zero = never).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// IssuedAt is when the access token was handed out (zero = unknown);
	// with ExpiresAt it gives the token's lifetime.
	IssuedAt time.Time `json:"issued_at,omitzero"`
	// Username and Password are for HTTP Basic (Referral Rock's public and
	// private keys).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// Authorization returns the value of the Authorization header.
func (c Credential) Authorization() string {
	if c.Username != "" || c.Password != "" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	}
	if c.AccessToken == "" {
		return ""
	}
	return "Bearer " + c.AccessToken
}

// Empty reports whether the credential carries nothing to send.
func (c Credential) Empty() bool { return c.Authorization() == "" }

// String hides the secrets.
func (c Credential) String() string { return "[credential redacted]" }

// GoString hides the secrets.
func (c Credential) GoString() string { return "auth.Credential{redacted}" }

// Expired reports whether the access token expires within skew of now.
func (c Credential) Expired(now time.Time, skew time.Duration) bool {
	return !c.ExpiresAt.IsZero() && !now.Add(skew).Before(c.ExpiresAt)
}

// Resolved is a connection ready to call with.
type Resolved struct {
	Conn Connection
	Cred Credential
}

// Source resolves connection ids to connections and credentials. The
// transport calls Resolve before every request and Renew once after a 401.
type Source interface {
	// Resolve returns the connection and a credential that is valid now,
	// refreshing it first when it is about to expire.
	Resolve(ctx context.Context, id string) (*Resolved, error)
	// Renew is called when the API refused stale (a 401): it returns a
	// newer credential (refreshing it unless another caller already did),
	// or an error wrapping ErrNoRefresh or ErrNeedsReauth.
	Renew(ctx context.Context, id string, stale Credential) (*Resolved, error)
}
