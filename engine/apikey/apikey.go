// Package apikey keeps the API's keys: operator keys, which reach
// everything, and tenant keys, which reach one tenant's objects. A key is
// 32 random bytes shown once when it is made; Redis keeps only its SHA-256,
// and a presented key is found by its hash and compared in constant time.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// Prefix starts every key, so a leaked key is recognisable.
const Prefix = "ghf_"

// ErrNotFound means no key has the id or secret asked for.
var ErrNotFound = errors.New("api key not found")

// Key is what is stored of an API key: never the key itself.
type Key struct {
	// ID names the key in lists and revocations (the first hex digits of
	// its hash).
	ID string `json:"id"`
	// Tenant is the tenant a tenant key reaches; "" is an operator key.
	Tenant  string    `json:"tenant,omitempty"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	hash    string
}

// Operator reports whether the key reaches everything.
func (k Key) Operator() bool { return k.Tenant == "" }

// Store is the API keys under one prefix.
type Store struct {
	rdb  redis.UniversalClient
	keys rdb.Keys
	// bootstrap is the hash of the operator token from the environment.
	bootstrap []byte
}

// New returns the key store under prefix. A non-empty adminToken (from
// GHLFLOW_ADMIN_TOKEN) is an operator key that is never stored.
func New(c redis.UniversalClient, prefix, adminToken string) *Store {
	s := &Store{rdb: c, keys: rdb.NewKeys(prefix)}
	if adminToken = strings.TrimSpace(adminToken); adminToken != "" {
		h := sha256.Sum256([]byte(adminToken))
		s.bootstrap = h[:]
	}
	return s
}

func hashOf(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Create makes a key for tenant ("" = an operator key) and returns the key
// itself, which is not kept, and its record.
func (s *Store) Create(ctx context.Context, tenant, name string) (string, Key, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Key{}, fmt.Errorf("api key: %w", err)
	}
	secret := Prefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := hashOf(secret)
	hx := hex.EncodeToString(h[:])
	k := Key{ID: hx[:12], Tenant: tenant, Name: name, Created: time.Now().UTC()}
	b, _ := json.Marshal(k)
	if err := s.rdb.HSet(ctx, s.keys.APIKeys(), hx, b).Err(); err != nil {
		return "", Key{}, fmt.Errorf("store api key: %w", err)
	}
	k.hash = hx
	return secret, k, nil
}

// Lookup returns the key record of a presented key. The environment's
// operator token is compared in constant time; a stored key is found by
// its hash (a hash lookup reveals nothing of the key) and its hash
// compared again in constant time.
func (s *Store) Lookup(ctx context.Context, secret string) (Key, error) {
	if secret == "" {
		return Key{}, ErrNotFound
	}
	h := hashOf(secret)
	if s.bootstrap != nil && subtle.ConstantTimeCompare(h[:], s.bootstrap) == 1 {
		return Key{ID: "admin-token", Name: "GHLFLOW_ADMIN_TOKEN"}, nil
	}
	hx := hex.EncodeToString(h[:])
	raw, err := s.rdb.HGet(ctx, s.keys.APIKeys(), hx).Result()
	if rdb.IsNil(err) {
		return Key{}, ErrNotFound
	}
	if err != nil {
		return Key{}, fmt.Errorf("api key lookup: %w", err)
	}
	var k Key
	if err := json.Unmarshal([]byte(raw), &k); err != nil {
		return Key{}, fmt.Errorf("api key record: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(k.ID), []byte(hx[:12])) != 1 {
		return Key{}, ErrNotFound
	}
	k.hash = hx
	return k, nil
}

// List returns the stored keys of tenant ("" = every key, operator and
// tenant), oldest first.
func (s *Store) List(ctx context.Context, tenant string) ([]Key, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.APIKeys()).Result()
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	out := make([]Key, 0, len(m))
	for hx, raw := range m {
		var k Key
		if json.Unmarshal([]byte(raw), &k) != nil {
			continue
		}
		if tenant != "" && k.Tenant != tenant {
			continue
		}
		k.hash = hx
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Revoke deletes the key with id; with tenant set, only a key of that
// tenant (another's answers ErrNotFound).
func (s *Store) Revoke(ctx context.Context, tenant, id string) error {
	ks, err := s.List(ctx, tenant)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.ID == id {
			return s.rdb.HDel(ctx, s.keys.APIKeys(), k.hash).Err()
		}
	}
	return fmt.Errorf("api key %s: %w", id, ErrNotFound)
}

// RevokeTenant deletes every key of tenant (the tenant is removed).
func (s *Store) RevokeTenant(ctx context.Context, tenant string) (int, error) {
	if tenant == "" {
		return 0, nil
	}
	ks, err := s.List(ctx, tenant)
	if err != nil {
		return 0, err
	}
	for _, k := range ks {
		if err := s.rdb.HDel(ctx, s.keys.APIKeys(), k.hash).Err(); err != nil {
			return 0, fmt.Errorf("revoke api key %s: %w", k.ID, err)
		}
	}
	return len(ks), nil
}
