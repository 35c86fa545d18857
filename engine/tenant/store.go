package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// ErrNotFound means no tenant has the id asked for.
var ErrNotFound = errors.New("tenant not found")

// Store keeps tenants in Redis under a prefix (keys in
// engine/internal/rdb: Tenants, TenantsVersion, TenantsChanges,
// TenantSubs).
type Store struct {
	rdb  redis.UniversalClient
	keys rdb.Keys
}

// NewStore returns the tenant store under prefix ("" = the default).
func NewStore(c redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: c, keys: rdb.NewKeys(prefix)}
}

func (s *Store) hashKey() string    { return s.keys.Tenants() }
func (s *Store) versionKey() string { return s.keys.TenantsVersion() }
func (s *Store) changesKey() string { return s.keys.TenantsChanges() }

// subsKey is the set of a tenant's subscription ids.
func (s *Store) subsKey(id string) string { return s.keys.TenantSubs(id) }

// changeKeys are the keys of the change script.
func (s *Store) changeKeys() []string {
	return []string{s.hashKey(), s.versionKey(), s.changesKey(), s.keys.TenantsRemoved()}
}

// bump is the change script.
var bump = rdb.TenantChange

// Put creates or replaces a tenant.
func (s *Store) Put(ctx context.Context, t *Tenant) error {
	if t.Status == "" {
		t.Status = StatusActive
	}
	if err := t.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	if err := bump.Run(ctx, s.rdb, s.changeKeys(), t.ID, string(b)).Err(); err != nil {
		return fmt.Errorf("put tenant %s: %w", t.ID, err)
	}
	return nil
}

// Update reads a tenant, applies fn and stores the result.
func (s *Store) Update(ctx context.Context, id string, fn func(*Tenant) error) (*Tenant, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := fn(t); err != nil {
		return nil, err
	}
	return t, s.Put(ctx, t)
}

// Get reads one tenant.
func (s *Store) Get(ctx context.Context, id string) (*Tenant, error) {
	raw, err := s.rdb.HGet(ctx, s.hashKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get tenant %s: %w", id, err)
	}
	return decode(id, raw)
}

func decode(id, raw string) (*Tenant, error) {
	var t Tenant
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", id, err)
	}
	return &t, nil
}

// List reads every tenant, sorted by id, and the version they are at.
func (s *Store) List(ctx context.Context) ([]*Tenant, int64, error) {
	p := s.rdb.TxPipeline()
	all := p.HGetAll(ctx, s.hashKey())
	ver := p.Get(ctx, s.versionKey())
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("list tenants: %w", err)
	}
	out := make([]*Tenant, 0, len(all.Val()))
	for id, raw := range all.Val() {
		t, err := decode(id, raw)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	v, _ := strconv.ParseInt(ver.Val(), 10, 64)
	return out, v, nil
}

// Version returns the version of the tenants (0 before any change).
func (s *Store) Version(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.versionKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tenants version: %w", err)
	}
	return v, nil
}

// Changes returns the tenants created or updated after version since, and
// the version read. When a tenant was removed since, ids lists every
// tenant still stored (the caller drops those it knows that are not in
// it); otherwise ids is nil. A removed tenant leaves no trace in Redis.
func (s *Store) Changes(ctx context.Context, since int64) (present []*Tenant, ids []string, version int64, err error) {
	p := s.rdb.TxPipeline()
	ver := p.Get(ctx, s.versionKey())
	rem := p.Get(ctx, s.keys.TenantsRemoved())
	zs := p.ZRangeByScore(ctx, s.changesKey(), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(since, 10), Max: "+inf"})
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, since, fmt.Errorf("tenant changes: %w", err)
	}
	version, _ = strconv.ParseInt(ver.Val(), 10, 64)
	removedAt, _ := strconv.ParseInt(rem.Val(), 10, 64)
	if names := zs.Val(); len(names) > 0 {
		raws, err := s.rdb.HMGet(ctx, s.hashKey(), names...).Result()
		if err != nil {
			return nil, nil, since, fmt.Errorf("tenant changes: %w", err)
		}
		for i, raw := range raws {
			str, ok := raw.(string)
			if !ok {
				continue // removed meanwhile: the removal's version says so
			}
			t, err := decode(names[i], str)
			if err != nil {
				return nil, nil, since, err
			}
			present = append(present, t)
		}
	}
	if removedAt > since {
		if ids, err = s.rdb.HKeys(ctx, s.hashKey()).Result(); err != nil {
			return nil, nil, since, fmt.Errorf("tenant ids: %w", err)
		}
		if ids == nil {
			ids = []string{}
		}
	}
	return present, ids, version, nil
}

// Delete removes the tenant record (its state is the engine's to purge)
// and records the removal for the other processes.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := bump.Run(ctx, s.rdb, s.changeKeys(), id, "").Err(); err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	return nil
}

// TrackSubs records subscription ids of a tenant, so removing the tenant
// finds its state without the recipes at hand.
func (s *Store) TrackSubs(ctx context.Context, id string, subs ...string) error {
	if len(subs) == 0 {
		return nil
	}
	args := make([]any, len(subs))
	for i, v := range subs {
		args[i] = v
	}
	if err := s.rdb.SAdd(ctx, s.subsKey(id), args...).Err(); err != nil {
		return fmt.Errorf("tenant %s subscriptions: %w", id, err)
	}
	return nil
}

// Subs returns the subscription ids recorded for a tenant.
func (s *Store) Subs(ctx context.Context, id string) ([]string, error) {
	out, err := s.rdb.SMembers(ctx, s.subsKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("tenant %s subscriptions: %w", id, err)
	}
	return out, nil
}

// TrackAll records the subscription ids of many tenants in one round trip.
func (s *Store) TrackAll(ctx context.Context, subs map[string][]string) error {
	if len(subs) == 0 {
		return nil
	}
	p := s.rdb.Pipeline()
	for id, ids := range subs {
		if len(ids) == 0 {
			continue
		}
		args := make([]any, len(ids))
		for i, v := range ids {
			args[i] = v
		}
		p.SAdd(ctx, s.subsKey(id), args...)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("tenant subscriptions: %w", err)
	}
	return nil
}

// Forget deletes the record of a tenant's subscription ids (once its
// state is gone).
func (s *Store) Forget(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.subsKey(id)).Err(); err != nil {
		return fmt.Errorf("forget tenant %s: %w", id, err)
	}
	return nil
}
