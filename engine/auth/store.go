package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// StoreConfig sets up a Store. Redis and Keys are required.
type StoreConfig struct {
	// Redis holds the connections; every process that shares it shares the
	// connections and their refreshes.
	Redis redis.UniversalClient
	// Prefix starts every key (default rdb.DefaultPrefix).
	Prefix string
	// Keys seal the credentials.
	Keys *Keyring
	// OAuth holds the OAuth client of each app id that has one; needed to
	// refresh and to install.
	OAuth map[string]*OAuthApp
	// RefreshAhead renews an access token this long before it expires
	// (default 5 minutes), or a third of its lifetime when that is shorter.
	RefreshAhead time.Duration
	// LockTTL bounds how long one process may hold a connection's refresh
	// lock (default 30 s); it must exceed RefreshTimeout.
	LockTTL time.Duration
	// RefreshTimeout bounds one call to a token endpoint (default 20 s).
	RefreshTimeout time.Duration
	// OnRefresh, when set, is told the outcome of every token refresh this
	// process makes (nil: the new token is stored).
	OnRefresh func(err error)
	// StateTTL is how long an install's state stays valid (default 10
	// minutes).
	StateTTL time.Duration
	// HTTPClient calls token endpoints (default http.DefaultClient with
	// RefreshTimeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets refresh and install events; never a secret.
	Logger *slog.Logger
}

// Store keeps connections in Redis with their credentials sealed, and
// refreshes OAuth tokens so that, across every process sharing the Redis,
// one connection is refreshed by one caller at a time (a lock with a fencing
// token) while the others wait for the new token. It implements Source and
// is safe for concurrent use.
type Store struct {
	// exchanger makes location token exchanges (UseExchanger).
	exchanger Exchanger
	rdb       redis.UniversalClient
	keys      rdb.Keys
	states    *connstate.States
	cfg       StoreConfig
	ring      *Keyring
	now       func() time.Time
	log       *slog.Logger
}

// NewStore returns a Store for cfg.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.Redis == nil {
		return nil, errors.New("connection store: no Redis client")
	}
	if cfg.Keys == nil {
		return nil, fmt.Errorf("connection store: %w", ErrNoKey)
	}
	if cfg.RefreshAhead <= 0 {
		cfg.RefreshAhead = 5 * time.Minute
	}
	if cfg.RefreshTimeout <= 0 {
		cfg.RefreshTimeout = 20 * time.Second
	}
	if cfg.LockTTL <= cfg.RefreshTimeout {
		cfg.LockTTL = max(30*time.Second, cfg.RefreshTimeout+10*time.Second)
	}
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = 10 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.RefreshTimeout}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	st := &Store{rdb: cfg.Redis, keys: rdb.NewKeys(cfg.Prefix), states: connstate.New(cfg.Redis, cfg.Prefix), cfg: cfg,
		ring: cfg.Keys, now: now, log: log}
	st.states.SetClock(now)
	return st, nil
}

func (s *Store) connKey(id string) string  { return s.keys.Conn(id) }
func (s *Store) fenceKey(id string) string { return s.keys.ConnFence(id) }
func (s *Store) lockKey(id string) string  { return s.keys.ConnLock(id) }
func (s *Store) setKey() string            { return s.keys.Conns() }

// metaJSON is a connection's metadata as stored: its status lives in its
// connstate record, not here.
func metaJSON(c Connection) ([]byte, error) {
	c.Status, c.Reason = "", ""
	return json.Marshal(c)
}

// Hash fields of a connection.
const (
	fieldMeta   = "meta"   // the Connection as JSON
	fieldSecret = "secret" // the Credential as JSON, sealed
	fieldFence  = "fence"  // the fencing token of the last refresh written
)

func (s *Store) seal(id string, cred Credential) (string, error) {
	b, err := json.Marshal(cred)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", id, err)
	}
	return s.ring.Seal(b, []byte("conn:"+id))
}

func (s *Store) open(id, sealed string) (Credential, error) {
	var cred Credential
	b, err := s.ring.Open(sealed, []byte("conn:"+id))
	if err != nil {
		return cred, fmt.Errorf("connection %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &cred); err != nil {
		return cred, fmt.Errorf("connection %s: credential: %w", id, err)
	}
	return cred, nil
}

// Put stores a connection and its credential, replacing any of that id.
func (s *Store) Put(ctx context.Context, c Connection, cred Credential) error {
	if c.ID == "" || c.App == "" {
		return errors.New("put connection: id and app are required")
	}
	if c.Status == "" {
		c.Status = StatusOK
	}
	now := s.now().UTC()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.UpdatedAt = now
	c.ExpiresAt = cred.ExpiresAt
	meta, err := metaJSON(c)
	if err != nil {
		return fmt.Errorf("put connection %s: %w", c.ID, err)
	}
	sealed, err := s.seal(c.ID, cred)
	if err != nil {
		return err
	}
	// The record and the set of ids are in two hash slots: one command
	// each, so that Redis Cluster takes them. The record goes first: a
	// failure in between leaves it unlisted, and the next Put lists it.
	if err := s.rdb.HSet(ctx, s.connKey(c.ID), fieldMeta, meta, fieldSecret, sealed).Err(); err != nil {
		return fmt.Errorf("put connection %s: %w", c.ID, err)
	}
	if err := s.rdb.SAdd(ctx, s.setKey(), c.ID).Err(); err != nil {
		return fmt.Errorf("put connection %s: %w", c.ID, err)
	}
	// A connection stored with a new credential is in force again in
	// every process (unless stored paused on purpose).
	if err := s.states.Set(ctx, c.ID, c.Status, c.Reason); err != nil {
		return fmt.Errorf("put connection %s: %w", c.ID, err)
	}
	return nil
}

// load reads a connection and opens its credential.
func (s *Store) load(ctx context.Context, id string) (*Resolved, int64, error) {
	pipe := s.rdb.Pipeline()
	get := pipe.HMGet(ctx, s.connKey(id), fieldMeta, fieldSecret, fieldFence)
	state := s.states.GetIn(ctx, pipe, id)
	if _, err := pipe.Exec(ctx); err != nil && !rdb.IsNil(err) {
		return nil, 0, fmt.Errorf("connection %s: %w", id, err)
	}
	vals := get.Val()
	st, err := state()
	if err != nil {
		return nil, 0, err
	}
	meta, _ := vals[0].(string)
	sealed, _ := vals[1].(string)
	if meta == "" {
		return nil, 0, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var fence int64
	if f, ok := vals[2].(string); ok {
		fence, _ = strconv.ParseInt(f, 10, 64)
	}
	r := &Resolved{}
	if err := json.Unmarshal([]byte(meta), &r.Conn); err != nil {
		return nil, 0, fmt.Errorf("connection %s: %w", id, err)
	}
	withState(&r.Conn, st)
	if sealed != "" {
		if r.Cred, err = s.open(id, sealed); err != nil {
			return nil, 0, err
		}
	}
	return r, fence, nil
}

// Get returns a connection without its credential.
func (s *Store) Get(ctx context.Context, id string) (Connection, error) {
	pipe := s.rdb.Pipeline()
	get := pipe.HGet(ctx, s.connKey(id), fieldMeta)
	state := s.states.GetIn(ctx, pipe, id)
	_, _ = pipe.Exec(ctx)
	meta, err := get.Result()
	if rdb.IsNil(err) {
		return Connection{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("connection %s: %w", id, err)
	}
	var c Connection
	if err := json.Unmarshal([]byte(meta), &c); err != nil {
		return Connection{}, fmt.Errorf("connection %s: %w", id, err)
	}
	st, err := state()
	if err != nil {
		return Connection{}, err
	}
	withState(&c, st)
	return c, nil
}

// withState puts a connection's state record on c.
func withState(c *Connection, st connstate.State) {
	c.Status, c.Reason = st.Status, st.Reason
	if c.Status == "" {
		c.Status = StatusOK
	}
}

// List returns every connection without credentials, sorted by id.
func (s *Store) List(ctx context.Context) ([]Connection, error) {
	ids, err := s.rdb.SMembers(ctx, s.setKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	sort.Strings(ids)
	out := make([]Connection, 0, len(ids))
	for _, id := range ids {
		c, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ListConnections returns the connections stored under prefix without
// their credentials; it needs no key (tools such as recipe lint use it).
func ListConnections(ctx context.Context, c redis.UniversalClient, prefix string) ([]Connection, error) {
	s := &Store{rdb: c, keys: rdb.NewKeys(prefix), states: connstate.New(c, prefix), cfg: StoreConfig{Prefix: prefix}}
	return s.List(ctx)
}

// Delete removes a connection.
func (s *Store) Delete(ctx context.Context, id string) error {
	// One transaction per hash slot, so that Redis Cluster takes them:
	// the connection's own keys ({conn:ID}), then its place in the set of
	// ids and its state ({conns}). List skips an id without a record.
	if err := s.rdb.Del(ctx, s.connKey(id), s.fenceKey(id), s.lockKey(id)).Err(); err != nil {
		return fmt.Errorf("delete connection %s: %w", id, err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.SRem(ctx, s.setKey(), id)
	pipe.HDel(ctx, s.keys.ConnStates(), id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete connection %s: %w", id, err)
	}
	return nil
}

// SetStatus sets a stored connection's status (ok, needs_reauth, paused)
// and the reason shown to users, in its connstate record.
func (s *Store) SetStatus(ctx context.Context, id, status, reason string) error {
	if !connstate.Valid(status) {
		return fmt.Errorf("connection %s: unknown status %q", id, status)
	}
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	return s.states.Set(ctx, id, status, reason)
}

// Resolve returns the connection and a credential valid now, refreshing an
// OAuth token that expires within its refresh margin (RefreshAhead, at most
// a third of its lifetime).
func (s *Store) Resolve(ctx context.Context, id string) (*Resolved, error) {
	r, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := usable(&r.Conn); err != nil {
		return nil, err
	}
	if s.renewable(&r.Conn) && r.Cred.Expired(s.now(), s.refreshMargin(r.Cred)) {
		nr, err := s.refresh(ctx, id, r.Cred)
		if err != nil && !errors.Is(err, ErrNeedsReauth) && !r.Cred.Expired(s.now(), 0) {
			// Refreshing ahead failed for now; the token still works.
			s.log.Warn("refresh ahead of expiry failed; using the current token", "connection", id,
				"expires_at", r.Cred.ExpiresAt, "error", Redact(err.Error()))
			return r, nil
		}
		return nr, err
	}
	return r, nil
}

// Renew returns a credential newer than stale, refreshing unless another
// caller already did.
func (s *Store) Renew(ctx context.Context, id string, stale Credential) (*Resolved, error) {
	r, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := usable(&r.Conn); err != nil {
		return nil, err
	}
	if !s.renewable(&r.Conn) {
		if r.Cred.AccessToken != stale.AccessToken || r.Cred.Password != stale.Password {
			return r, nil // replaced by the user meanwhile
		}
		// A token ghlflow cannot renew was refused: only the user can
		// replace it, so the connection says so until then.
		reason := "the API refused the " + r.Conn.Kind + " credential (401)"
		if err := s.SetStatus(ctx, id, StatusNeedsReauth, reason); err != nil {
			s.log.Warn("connection status not stored", "connection", id, "error", err)
		}
		s.log.Warn("connection needs to be authorized again", "connection", id, "reason", reason)
		return nil, fmt.Errorf("connection %s: %w: %w", id, ErrNeedsReauth, ErrNoRefresh)
	}
	return s.refresh(ctx, id, stale)
}

// Refresh renews a connection's token now, whatever its expiry.
func (s *Store) Refresh(ctx context.Context, id string) (*Resolved, error) {
	r, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.renewable(&r.Conn) {
		return nil, fmt.Errorf("connection %s: %w", id, ErrNoRefresh)
	}
	return s.refresh(ctx, id, r.Cred)
}

func usable(c *Connection) error {
	switch c.Status {
	case StatusNeedsReauth:
		return fmt.Errorf("connection %s: %w: %s", c.ID, ErrNeedsReauth, c.Reason)
	case StatusPaused:
		return fmt.Errorf("connection %s: %w: %s", c.ID, ErrPaused, c.Reason)
	}
	return nil
}

// renewable reports whether ghlflow can renew c's token itself.
func (s *Store) renewable(c *Connection) bool {
	return c.Kind == KindOAuth
}

// Reseal re-seals every credential not sealed with the newest key and
// returns how many it rewrote. Run it after adding a key in front of the
// ring; then the old key may be dropped.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	ids, err := s.rdb.SMembers(ctx, s.setKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("reseal: %w", err)
	}
	n := 0
	for _, id := range ids {
		sealed, err := s.rdb.HGet(ctx, s.connKey(id), fieldSecret).Result()
		if rdb.IsNil(err) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("reseal %s: %w", id, err)
		}
		if s.ring.Current(sealed) {
			continue
		}
		cred, err := s.open(id, sealed)
		if err != nil {
			return n, fmt.Errorf("reseal: %w", err)
		}
		fresh, err := s.seal(id, cred)
		if err != nil {
			return n, err
		}
		// Swap only if no refresh replaced the secret meanwhile.
		ok, err := rdb.ConnSwapSecret.Run(ctx, s.rdb, []string{s.connKey(id)}, sealed, fresh).Int()
		if err != nil {
			return n, fmt.Errorf("reseal %s: %w", id, err)
		}
		if ok == 1 {
			n++
		}
	}
	return n, nil
}

// DeleteConnection removes a stored connection, its sealed credential and
// its state under prefix, without the keys to open it (removing a tenant).
func DeleteConnection(ctx context.Context, c redis.UniversalClient, prefix, id string) error {
	s := &Store{rdb: c, keys: rdb.NewKeys(prefix), states: connstate.New(c, prefix), cfg: StoreConfig{Prefix: prefix}}
	return s.Delete(ctx, id)
}

// GetConnection reads a stored connection's metadata under prefix.
func GetConnection(ctx context.Context, c redis.UniversalClient, prefix, id string) (Connection, error) {
	s := &Store{rdb: c, keys: rdb.NewKeys(prefix), states: connstate.New(c, prefix), cfg: StoreConfig{Prefix: prefix}}
	return s.Get(ctx, id)
}

// UnknownConnectionError names the roles of a tenant whose connection is
// neither static nor stored: every poll of the tenant would fail for them.
type UnknownConnectionError struct {
	// Roles are the roles, sorted; Conns their connection ids by role.
	Roles []string
	Conns map[string]string
	// Known are the ids of the stored and static connections.
	Known []string
}

// Error implements error.
func (e *UnknownConnectionError) Error() string { return "unknown connection " + e.List() }

// List is the unknown connections as `"ID" (role ROLE)`, comma separated.
func (e *UnknownConnectionError) List() string {
	out := make([]string, len(e.Roles))
	for i, role := range e.Roles {
		out[i] = fmt.Sprintf("%q (role %s)", e.Conns[role], role)
	}
	return strings.Join(out, ", ")
}

// CheckConnections returns an *UnknownConnectionError when a connection of
// conns (role → connection id) is neither among static nor stored under
// prefix. It reads only metadata and needs no key.
func CheckConnections(ctx context.Context, c redis.UniversalClient, prefix string, static []Connection, conns map[string]string) error {
	have := make(map[string]bool, len(static))
	for _, s := range static {
		have[s.ID] = true
	}
	e := &UnknownConnectionError{Conns: map[string]string{}}
	for role, id := range conns {
		if have[id] {
			continue
		}
		_, err := GetConnection(ctx, c, prefix, id)
		if errors.Is(err, ErrNotFound) {
			e.Roles, e.Conns[role] = append(e.Roles, role), id
			continue
		}
		if err != nil {
			return err
		}
	}
	if len(e.Roles) == 0 {
		return nil
	}
	sort.Strings(e.Roles)
	ids, err := c.SMembers(ctx, rdb.NewKeys(prefix).Conns()).Result()
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	for _, s := range static {
		ids = append(ids, s.ID)
	}
	e.Known = ids
	return e
}

// KnownList formats connection ids for a message: sorted, without
// duplicates, the first n of them and how many more, or "none".
func KnownList(ids []string, n int) string {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	switch {
	case len(ids) == 0:
		return "none"
	case len(ids) > n:
		return strings.Join(ids[:n], ", ") + fmt.Sprintf(" and %d more", len(ids)-n)
	}
	return strings.Join(ids, ", ")
}
