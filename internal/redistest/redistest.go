// Package redistest gives tests the shared Redis: one client per test
// binary on REDIS_ADDR (127.0.0.1:6379 when unset), and for each test a
// random key prefix of its own whose keys, and asynq queues named after it,
// are deleted when the test ends. Nothing else is flushed: tests of every
// package share one database.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// poolSize is the shared client's connection pool: enough for the tests
// that call from dozens of goroutines at once.
const poolSize = 64

var (
	once   sync.Once
	shared *redis.Client
	dialed error
)

// Addr is the Redis the tests use: REDIS_ADDR, or 127.0.0.1:6379.
func Addr() string {
	if a := strings.TrimSpace(os.Getenv("REDIS_ADDR")); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Dial returns a client of its own on Addr with poolSize connections, for
// a child process of a test; the caller closes it.
func Dial(poolSize int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: Addr(), PoolSize: poolSize})
}

// Client returns the test binary's one client, and skips t when no Redis
// answers.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	once.Do(func() {
		shared = Dial(poolSize)
		dialed = shared.Ping(context.Background()).Err()
	})
	if dialed != nil {
		t.Skipf("no Redis at %s: %v", Addr(), dialed)
	}
	return shared
}

// New returns the shared client and a prefix of t's own (see Prefix).
func New(t testing.TB) (*redis.Client, string) {
	t.Helper()
	c := Client(t)
	return c, Prefix(t, c)
}

// Prefix returns a random key prefix for t alone. When t ends, every key
// under it goes, with the go-redis/redis_rate keys ("rate:" + prefix) and
// the asynq queues whose names start with it.
func Prefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	p := "test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { Clean(c, p) })
	return p
}

// Clean deletes the keys of prefix: its own, redis_rate's and those of the
// asynq queues named after it.
func Clean(c *redis.Client, prefix string) {
	ctx := context.Background()
	for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*", "asynq:{" + prefix + "*"} {
		iter := c.Scan(ctx, 0, pattern, 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for start := 0; start < len(keys); start += 500 {
			c.Del(ctx, keys[start:min(start+500, len(keys))]...)
		}
	}
	queues, _ := c.SMembers(ctx, "asynq:queues").Result()
	for _, q := range queues {
		if strings.HasPrefix(q, prefix) {
			c.SRem(ctx, "asynq:queues", q)
		}
	}
}

// Keys returns every key under prefix (SCAN, not KEYS).
func Keys(t testing.TB, c *redis.Client, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s*: %v", prefix, err)
	}
	return out
}
