// Package recipestore keeps recipes added through the CLI (and the API) in
// Redis, beside the operator's recipe files. Every change bumps a version
// that running engines check, reloading their recipes when it moves.
package recipestore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// ErrNotFound means no stored recipe has the name asked for.
var ErrNotFound = errors.New("stored recipe not found")

// Store is the stored recipes under one prefix.
type Store struct {
	rdb  redis.UniversalClient
	keys rdb.Keys
}

// New returns the stored recipes under prefix ("" = the default).
func New(c redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: c, keys: rdb.NewKeys(prefix)}
}

// Source names a stored recipe where a file name would go (errors say
// "stored:NAME:LINE").
func Source(name string) string { return "stored:" + name }

// Put stores (or replaces) the recipe name with its YAML text; the caller
// has validated it.
func (s *Store) Put(ctx context.Context, name string, text []byte) error {
	p := s.rdb.TxPipeline()
	p.HSet(ctx, s.keys.Recipes(), name, text)
	p.Incr(ctx, s.keys.RecipesVersion())
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("store recipe %s: %w", name, err)
	}
	return nil
}

// Remove deletes a stored recipe.
func (s *Store) Remove(ctx context.Context, name string) error {
	n, err := s.rdb.HDel(ctx, s.keys.Recipes(), name).Result()
	if err != nil {
		return fmt.Errorf("remove recipe %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("recipe %s: %w", name, ErrNotFound)
	}
	return s.rdb.Incr(ctx, s.keys.RecipesVersion()).Err()
}

// All returns the stored recipes' names, sorted, and their texts.
func (s *Store) All(ctx context.Context) ([]string, map[string][]byte, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.Recipes()).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("stored recipes: %w", err)
	}
	names := make([]string, 0, len(m))
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		names = append(names, k)
		out[k] = []byte(v)
	}
	sort.Strings(names)
	return names, out, nil
}

// Version returns the stored recipes' version (0 before any change).
func (s *Store) Version(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.keys.RecipesVersion()).Result()
	if rdb.IsNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stored recipes version: %w", err)
	}
	return strconv.ParseInt(v, 10, 64)
}
