package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// Status is what the limiter knows of a resource's budget.
type Status struct {
	App, Resource string
	// Max requests per Interval: the burst budget in force.
	Max      int
	Interval time.Duration
	// DailyLimit and DailyRemaining come from the last answer's headers
	// (DailyRemaining -1 = unknown).
	DailyLimit     int
	DailyRemaining int
	// PausedFor is how long requests are still held back (after a 429).
	PausedFor time.Duration
	// Stretch is how many times longer polls should wait (1 = as
	// scheduled); Reason says why when it is more than 1.
	Stretch float64
	Reason  string
}

// Status returns the budget of resource.
func (l *Limiter) Status(ctx context.Context, app, resource string) (Status, error) {
	k := l.key(app, resource)
	b, _, err := l.budgetOf(ctx, app, k)
	if err != nil {
		return Status{}, err
	}
	p, err := l.paused(ctx, k)
	if err != nil {
		return Status{}, err
	}
	st := Status{App: app, Resource: resource, Max: b.Max, Interval: b.Interval, DailyLimit: b.DailyLimit,
		DailyRemaining: b.DailyRemaining, PausedFor: p}
	st.Stretch, st.Reason = l.stretch(b)
	return st, nil
}

// Stretch returns the interval to wait before the next poll of resource:
// every, unless the daily budget runs low. Then the polls are spaced so the
// budget lasts until the day resets (UTC midnight): by the ratio of the
// share of the day left to the share of the budget left, up to MaxStretch;
// with nothing left, until the reset. reason says what was done ("" when
// nothing).
func (l *Limiter) Stretch(ctx context.Context, app, resource string, every time.Duration) (time.Duration, string, error) {
	b, _, err := l.budgetOf(ctx, app, l.key(app, resource))
	if err != nil {
		return every, "", err
	}
	f, reason := l.stretch(b)
	if f <= 1 {
		return every, "", nil
	}
	if b.DailyRemaining == 0 {
		return max(every, l.untilReset()), reason, nil
	}
	return time.Duration(float64(every) * f), reason, nil
}

// untilReset is the time left until the daily budget resets (UTC midnight,
// as the documented limit gives no other reset time).
func (l *Limiter) untilReset() time.Duration {
	now := l.now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	return midnight.Sub(now)
}

func (l *Limiter) stretch(b budget) (float64, string) {
	if b.DailyLimit <= 0 || b.DailyRemaining < 0 {
		return 1, ""
	}
	// A reading from an earlier day says nothing about today.
	if !b.DailyAt.IsZero() && b.DailyAt.UTC().YearDay() != l.now().UTC().YearDay() {
		return 1, ""
	}
	if b.DailyRemaining == 0 {
		return l.cfg.MaxStretch, fmt.Sprintf("daily budget spent (%d requests); polls wait for the reset in %s",
			b.DailyLimit, l.untilReset().Round(time.Minute))
	}
	share := float64(b.DailyRemaining) / float64(b.DailyLimit)
	dayLeft := l.untilReset().Hours() / 24
	if share >= l.cfg.LowWater || share >= dayLeft {
		return 1, ""
	}
	f := min(dayLeft/share, l.cfg.MaxStretch)
	return f, fmt.Sprintf("daily budget low: %d of %d left with %.0f%% of the day to go; polls stretched %.1f×",
		b.DailyRemaining, b.DailyLimit, dayLeft*100, f)
}

// Demand is how far the polls of a resource are stretched for the demand
// its subscriptions put on it.
type Demand struct {
	// Burst is the factor for the burst budget: the requests per second
	// asked for over the requests per second the limiter lets through (1
	// when they fit).
	Burst float64
	// Daily is the factor for the daily budget (see Stretch).
	Daily float64
	// Spent is true when the daily budget is spent: polls wait until the
	// reset, UntilReset from now.
	Spent      bool
	UntilReset time.Duration
	// Reason says what was done ("" when nothing).
	Reason string
}

// Factor is the combined stretch: Burst times Daily, up to MaxStretch.
func (d Demand) Factor(maxStretch float64) float64 {
	return min(max(d.Burst, 1)*max(d.Daily, 1), maxStretch)
}

// MaxStretch is the largest stretch factor the limiter asks for.
func (l *Limiter) MaxStretch() float64 { return l.cfg.MaxStretch }

// Demand returns how far the polls of resource must be stretched when its
// subscriptions ask for perSecond requests a second: by the ratio of that
// demand to the rate the limiter lets through (Safety of the burst budget),
// so that every subscription is polled at the same stretched interval
// instead of some waiting behind others; and further for the daily budget.
// The result is kept in Redis for a minute, for `connect list`.
func (l *Limiter) Demand(ctx context.Context, app, resource string, perSecond float64) (Demand, error) {
	b, _, err := l.budgetOf(ctx, app, l.key(app, resource))
	if err != nil {
		return Demand{Burst: 1, Daily: 1}, err
	}
	d := Demand{Burst: 1}
	var reasons []string
	if b.Max > 0 && b.Interval > 0 {
		rate := float64(b.Max) * l.cfg.Safety / b.Interval.Seconds() * demandHeadroom
		if perSecond > rate {
			d.Burst = perSecond / rate
			reasons = append(reasons, fmt.Sprintf("its subscriptions ask %.1f requests/s of a budget of %d per %s (%.1f/s planned); polls stretched %.1f×",
				perSecond, b.Max, b.Interval, rate, d.Burst))
		}
	}
	var daily string
	d.Daily, daily = l.stretch(b)
	if daily != "" {
		reasons = append(reasons, daily)
	}
	if b.DailyLimit > 0 && b.DailyRemaining == 0 && d.Daily > 1 {
		d.Spent, d.UntilReset = true, l.untilReset()
	}
	d.Reason = strings.Join(reasons, "; ")
	if err := l.keepDemand(ctx, app, resource, d); err != nil {
		return d, err
	}
	return d, nil
}

// demandHeadroom is the share of the paced rate a stretch plans for. Polls
// that fill the limiter's rate exactly would queue up behind each other in
// it, each a little later than the last, and a queue that a pause or a
// slow moment builds would never drain; the 2 % left over drains it (and
// leaves room for the chains' own requests).
const demandHeadroom = 0.98

// demandTTL is how long a stretch kept for `connect list` stays shown
// without an engine renewing it.
const demandTTL = time.Minute

type keptDemand struct {
	Factor float64   `json:"factor"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func (l *Limiter) keepDemand(ctx context.Context, app, resource string, d Demand) error {
	field := app + "/" + resource
	f := d.Factor(l.cfg.MaxStretch)
	if f <= 1 {
		return l.rdb.HDel(ctx, l.keys.RateStretches(), field).Err()
	}
	v, err := json.Marshal(keptDemand{Factor: f, Reason: d.Reason, At: l.now()})
	if err != nil {
		return err
	}
	if err := l.rdb.HSet(ctx, l.keys.RateStretches(), field, v).Err(); err != nil {
		return fmt.Errorf("keep stretch of %s: %w", field, err)
	}
	return nil
}

// Stretched is a resource whose polls an engine stretches.
type Stretched struct {
	App, Resource string
	Factor        float64
	Reason        string
}

// Stretches lists the resources whose polls the engines sharing client
// (with key prefix, "" for the default) stretch now.
func Stretches(ctx context.Context, client redis.UniversalClient, prefix string) ([]Stretched, error) {
	all, err := client.HGetAll(ctx, rdb.NewKeys(prefix).RateStretches()).Result()
	if err != nil {
		return nil, fmt.Errorf("stretches: %w", err)
	}
	var out []Stretched
	for field, v := range all {
		var k keptDemand
		app, resource, ok := strings.Cut(field, "/")
		if !ok || json.Unmarshal([]byte(v), &k) != nil || time.Since(k.At) > demandTTL {
			continue
		}
		out = append(out, Stretched{App: app, Resource: resource, Factor: k.Factor, Reason: k.Reason})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App+"/"+out[i].Resource < out[j].App+"/"+out[j].Resource })
	return out, nil
}
