// Package ratelimit paces the requests of every ghlflow process to each
// app resource (a GHL location or company, a referral-app account) through
// Redis, so that together they stay inside the app's burst budget (GCRA by
// github.com/go-redis/redis_rate) and learn the real budget from GHL's
// X-RateLimit-* headers. It also watches the daily budget and tells the
// scheduler how far to stretch a resource's polls when it runs low.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// Config sets up a Limiter. Redis is required.
type Config struct {
	// Redis is shared by every process that calls the same apps.
	Redis redis.UniversalClient
	// Prefix starts every key (default rdb.DefaultPrefix).
	Prefix string
	// Catalog supplies each app's documented budget.
	Catalog *catalog.Catalog
	// Budgets overrides the budget of apps by id (e.g. a plan with other
	// limits); the X-RateLimit-* headers override both once seen.
	Budgets map[string]catalog.RateLimit
	// Safety is the share of the burst budget ghlflow spends (default
	// 0.95), leaving room for clock skew and requests in flight.
	Safety float64
	// LowWater is the share of the daily budget below which polls may be
	// stretched (default 0.25).
	LowWater float64
	// MaxStretch caps how many times longer a poll interval is made
	// (default 96).
	MaxStretch float64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets budget changes and pauses.
	Logger *slog.Logger
}

// Limiter is a rate limiter shared through Redis. It is safe for concurrent
// use; it implements transport.Limiter.
type Limiter struct {
	cfg  Config
	rdb  redis.UniversalClient
	keys rdb.Keys
	gc   *redis_rate.Limiter
	now  func() time.Time
	log  *slog.Logger

	mu    sync.Mutex
	cache map[string]*cached // learned budgets by key
}

type cached struct {
	b       budget
	fetched time.Time
	written time.Time
}

// budget is what a resource may spend.
type budget struct {
	Max            int           // requests per Interval
	Interval       time.Duration // the burst window
	DailyLimit     int           // 0 = none known
	DailyRemaining int           // -1 = unknown
	DailyAt        time.Time     // when DailyRemaining was read
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	if cfg.Safety <= 0 || cfg.Safety > 1 {
		cfg.Safety = 0.95
	}
	if cfg.LowWater <= 0 || cfg.LowWater > 1 {
		cfg.LowWater = 0.25
	}
	if cfg.MaxStretch < 1 {
		cfg.MaxStretch = 96
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{cfg: cfg, rdb: cfg.Redis, keys: rdb.NewKeys(cfg.Prefix), gc: redis_rate.NewLimiter(cfg.Redis), now: now, log: log,
		cache: map[string]*cached{}}
}

// key is a resource's rate-limit key: the GCRA key and the cache key.
func (l *Limiter) key(app, resource string) rlKey {
	return rlKey{gcra: l.keys.RateLimit(app, resource), budget: l.keys.RateBudget(app, resource),
		pause: l.keys.RatePause(app, resource)}
}

// rlKey are a resource's keys (see engine/internal/rdb).
type rlKey struct{ gcra, budget, pause string }

// documented returns the app's budget from the config or the catalog.
func (l *Limiter) documented(app string) (budget, bool) {
	rl, ok := l.cfg.Budgets[app]
	if !ok && l.cfg.Catalog != nil {
		if a := l.cfg.Catalog.App(app); a != nil {
			rl, ok = a.RateLimit, true
		}
	}
	if !ok || rl.Burst <= 0 {
		return budget{}, false
	}
	iv := rl.Interval.Std()
	if iv <= 0 {
		iv = 10 * time.Second
	}
	return budget{Max: rl.Burst, Interval: iv, DailyLimit: rl.Daily, DailyRemaining: -1}, true
}

// budgetOf returns the budget in force for key: learned from headers (kept
// in Redis, cached here for a second), else documented.
func (l *Limiter) budgetOf(ctx context.Context, app string, k rlKey) (budget, bool, error) {
	now := l.now()
	l.mu.Lock()
	c := l.cache[k.gcra]
	if c != nil && now.Sub(c.fetched) < time.Second {
		b := c.b
		l.mu.Unlock()
		return b, b.Max > 0, nil
	}
	l.mu.Unlock()
	vals, err := l.rdb.HGetAll(ctx, k.budget).Result()
	if err != nil {
		return budget{}, false, fmt.Errorf("rate limit budget: %w", err)
	}
	b, ok := l.documented(app)
	if !ok {
		b = budget{DailyRemaining: -1}
	}
	if n, _ := strconv.Atoi(vals["max"]); n > 0 {
		b.Max = n
	}
	if ms, _ := strconv.ParseInt(vals["interval_ms"], 10, 64); ms > 0 {
		b.Interval = time.Duration(ms) * time.Millisecond
	}
	if n, err := strconv.Atoi(vals["daily_limit"]); err == nil && n > 0 {
		b.DailyLimit = n
	}
	if n, err := strconv.Atoi(vals["daily_remaining"]); err == nil {
		b.DailyRemaining = n
		if at, _ := strconv.ParseInt(vals["daily_at"], 10, 64); at > 0 {
			b.DailyAt = time.UnixMilli(at)
		}
	}
	l.mu.Lock()
	if c = l.cache[k.gcra]; c == nil {
		c = &cached{}
		l.cache[k.gcra] = c
	}
	c.b, c.fetched = b, now
	l.mu.Unlock()
	return b, b.Max > 0, nil
}

// limit turns a budget into a GCRA limit: Safety of the budget as the rate,
// and a burst of half the budget's unspent share (at least one), so that
// no window of Interval holds more than Max requests and, for budgets of
// 40 or more, a window keeps a request or more to spare for the spread of
// the requests' transit times: a window that the API sees spent (its
// X-RateLimit-Remaining at 0) then means another client spent it.
func (l *Limiter) limit(b budget) redis_rate.Limit {
	// redis_rate takes a whole number of requests per period: scale both.
	rate := int(math.Floor(float64(b.Max) * l.cfg.Safety * 10))
	burst := int(math.Floor(float64(b.Max) * (1 - l.cfg.Safety) / 2))
	return redis_rate.Limit{Rate: max(rate, 1), Period: b.Interval * 10, Burst: max(burst, 1)}
}

// Wait blocks until a request to resource of app may go out, or ctx ends.
// Apps without a budget are not paced.
func (l *Limiter) Wait(ctx context.Context, app, resource string) error {
	k := l.key(app, resource)
	for {
		b, ok, err := l.budgetOf(ctx, app, k)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if d, err := l.paused(ctx, k); err != nil {
			return err
		} else if d > 0 {
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		res, err := l.gc.Allow(ctx, k.gcra, l.limit(b))
		if err != nil {
			return fmt.Errorf("rate limit %s %s: %w", app, resource, err)
		}
		if res.Allowed > 0 {
			return nil
		}
		// A little jitter spreads the waiters of many processes.
		d := res.RetryAfter + time.Duration(rand.Int64N(int64(2*time.Millisecond)))
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (l *Limiter) paused(ctx context.Context, k rlKey) (time.Duration, error) {
	ms, err := l.rdb.PTTL(ctx, k.pause).Result()
	if err != nil {
		return 0, fmt.Errorf("rate limit pause: %w", err)
	}
	if ms <= 0 {
		return 0, nil
	}
	return ms, nil
}

// Pause holds back every request to resource for d, in every process (after
// a 429, as its Retry-After says).
func (l *Limiter) Pause(ctx context.Context, app, resource string, d time.Duration) {
	if d <= 0 {
		return
	}
	k := l.key(app, resource)
	if err := rdb.RatePause.Run(ctx, l.rdb, []string{k.pause}, d.Milliseconds()).Err(); err != nil {
		l.log.Warn("rate limit pause not stored", "app", app, "resource", resource, "error", err)
		return
	}
	l.log.Info("requests paused", "app", app, "resource", resource, "for", d)
}

// Observe learns from an answer's X-RateLimit-* headers: the burst budget
// (when it differs from what is in force), the daily limit and what remains
// of it. When the burst budget is spent by someone else (Remaining 0), the
// resource pauses for a tenth of the window.
func (l *Limiter) Observe(ctx context.Context, app, resource string, h http.Header) {
	maxv, err1 := strconv.Atoi(h.Get("X-RateLimit-Max"))
	ivms, err2 := strconv.ParseInt(h.Get("X-RateLimit-Interval-Milliseconds"), 10, 64)
	dailyLimit, err3 := strconv.Atoi(h.Get("X-RateLimit-Limit-Daily"))
	dailyRem, err4 := strconv.Atoi(h.Get("X-RateLimit-Daily-Remaining"))
	remaining, err5 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	if err3 != nil || dailyLimit <= 0 {
		// A remaining count means nothing without the limit it counts
		// down (a server with no daily limit may send 0 for both).
		err4 = errors.New("no daily limit")
	}
	if err1 != nil && err3 != nil && err4 != nil {
		return // no rate-limit headers
	}
	k := l.key(app, resource)
	now := l.now()
	l.mu.Lock()
	c := l.cache[k.gcra]
	if c == nil {
		c = &cached{b: budget{DailyRemaining: -1}}
		l.cache[k.gcra] = c
	}
	changed := (err1 == nil && maxv > 0 && maxv != c.b.Max) || (err2 == nil && ivms > 0 && time.Duration(ivms)*time.Millisecond != c.b.Interval) ||
		(err3 == nil && dailyLimit > 0 && dailyLimit != c.b.DailyLimit)
	// The daily figure is written at most once a second per process.
	write := changed || (err4 == nil && now.Sub(c.written) >= time.Second)
	if err1 == nil && maxv > 0 {
		c.b.Max = maxv
	}
	if err2 == nil && ivms > 0 {
		c.b.Interval = time.Duration(ivms) * time.Millisecond
	}
	if err3 == nil && dailyLimit > 0 {
		c.b.DailyLimit = dailyLimit
	}
	if err4 == nil {
		c.b.DailyRemaining, c.b.DailyAt = dailyRem, now
	}
	if write {
		c.written = now
	}
	interval := c.b.Interval
	l.mu.Unlock()
	if write {
		fields := map[string]any{}
		if err1 == nil && maxv > 0 {
			fields["max"] = maxv
		}
		if err2 == nil && ivms > 0 {
			fields["interval_ms"] = ivms
		}
		if err3 == nil && dailyLimit > 0 {
			fields["daily_limit"] = dailyLimit
		}
		if err4 == nil {
			fields["daily_remaining"] = dailyRem
			fields["daily_at"] = now.UnixMilli()
		}
		pipe := l.rdb.Pipeline()
		pipe.HSet(ctx, k.budget, fields)
		pipe.Expire(ctx, k.budget, 48*time.Hour)
		if _, err := pipe.Exec(ctx); err != nil {
			l.log.Warn("rate limit budget not stored", "app", app, "resource", resource, "error", err)
		}
		if changed {
			l.log.Debug("rate limit budget learned", "app", app, "resource", resource, "fields", fields)
		}
	}
	if err5 == nil && remaining <= 0 && err1 == nil && maxv > 0 && interval > 0 {
		l.Pause(ctx, app, resource, interval/10)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Forget deletes the budget, pause and GCRA state of one resource of app
// under prefix (a removed tenant's location).
func Forget(ctx context.Context, c redis.UniversalClient, prefix, app, resource string) error {
	keys := rdb.NewKeys(prefix)
	if err := c.Del(ctx, keys.RateState(app, resource), keys.RateBudget(app, resource), keys.RatePause(app, resource)).Err(); err != nil {
		return fmt.Errorf("forget %s %s: %w", app, resource, err)
	}
	return nil
}
