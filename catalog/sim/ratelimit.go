package sim

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// budget is one app's request budget.
type budget struct {
	burst    int // per interval; <= 0 = unlimited
	interval time.Duration
	daily    int // <= 0 = unlimited
	headers  bool
	// precomputed header values
	maxStr, intervalStr, dailyStr []string
}

// bucket counts one (app, location)'s requests in the current burst window
// and day.
type bucket struct {
	mu       sync.Mutex
	winStart time.Time
	count    int
	day      int64
	dayCount int
}

type limiter struct {
	s       *Server
	budgets map[string]*budget
	mu      sync.RWMutex
	buckets map[string]*bucket
	// forced429 is the number of requests still to refuse (fault injection).
}

func newLimiter(s *Server) *limiter {
	l := &limiter{s: s, budgets: map[string]*budget{}, buckets: map[string]*bucket{}}
	for _, app := range s.cat.Apps() {
		rl := app.RateLimit
		if o, ok := s.cfg.RateLimits[app.ID]; ok {
			if o.Burst != 0 {
				rl.Burst = o.Burst
			}
			if o.Interval != 0 {
				rl.Interval = o.Interval
			}
			if o.Daily != 0 {
				rl.Daily = o.Daily
			}
		}
		b := &budget{burst: rl.Burst, interval: rl.Interval.Std(), daily: rl.Daily}
		if app.ID == "ghl" {
			b.headers = true
			if s.cfg.Burst != 0 {
				b.burst = s.cfg.Burst
			}
			if s.cfg.Interval != 0 {
				b.interval = s.cfg.Interval
			}
			if s.cfg.Daily != 0 {
				b.daily = s.cfg.Daily
			}
		}
		if b.interval <= 0 {
			b.interval = 10 * time.Second
		}
		b.maxStr = []string{strconv.Itoa(max(b.burst, 0))}
		b.intervalStr = []string{strconv.FormatInt(b.interval.Milliseconds(), 10)}
		b.dailyStr = []string{strconv.Itoa(max(b.daily, 0))}
		l.budgets[app.ID] = b
	}
	return l
}

func (l *limiter) bucket(key string) *bucket {
	l.mu.RLock()
	b := l.buckets[key]
	l.mu.RUnlock()
	if b != nil {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b = l.buckets[key]; b == nil {
		b = &bucket{}
		l.buckets[key] = b
	}
	return b
}

// allow counts a request against the (app, location) budget, sets GHL's
// X-RateLimit-* headers and, past either limit, answers 429 and returns
// false.
func (l *limiter) allow(c *call, app, loc string) bool {
	bg := l.budgets[app]
	if bg == nil {
		return true
	}
	b := l.bucket(app + "|" + loc)
	now := c.now
	day := now.UTC().Unix() / 86400
	b.mu.Lock()
	if now.Sub(b.winStart) >= bg.interval || now.Before(b.winStart) {
		b.winStart, b.count = now, 0
	}
	if b.day != day {
		b.day, b.dayCount = day, 0
	}
	burstOK := bg.burst <= 0 || b.count < bg.burst
	dailyOK := bg.daily <= 0 || b.dayCount < bg.daily
	forced := l.s.faults.take429()
	ok := burstOK && dailyOK && !forced
	if ok {
		b.count++
		b.dayCount++
	}
	remaining := max(bg.burst-b.count, 0)
	dailyRemaining := max(bg.daily-b.dayCount, 0)
	resetIn := bg.interval - now.Sub(b.winStart)
	b.mu.Unlock()
	if forced {
		remaining = 0
	}
	if bg.headers {
		// A limit turned off (negative in Config) sends no headers.
		h := c.w.Header()
		if bg.burst > 0 || forced {
			h["X-Ratelimit-Max"] = bg.maxStr
			h["X-Ratelimit-Interval-Milliseconds"] = bg.intervalStr
			h["X-Ratelimit-Remaining"] = []string{strconv.Itoa(remaining)}
		}
		if bg.daily > 0 {
			h["X-Ratelimit-Limit-Daily"] = bg.dailyStr
			h["X-Ratelimit-Daily-Remaining"] = []string{strconv.Itoa(dailyRemaining)}
		}
	}
	if ok {
		return true
	}
	secs := int(resetIn.Seconds() + 0.999)
	if !dailyOK {
		secs = int(time.Until(time.Unix((day+1)*86400, 0)).Seconds())
	}
	c.w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	l.s.logs.count429()
	l.s.fail(c, loc, errf(http.StatusTooManyRequests, "Too Many Requests"))
	return false
}

// ResetRateLimits forgets every location's request counts.
func (s *Server) ResetRateLimits() {
	s.limiter.mu.Lock()
	s.limiter.buckets = map[string]*bucket{}
	s.limiter.mu.Unlock()
}
