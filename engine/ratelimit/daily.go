package ratelimit

import (
	"context"
	"fmt"
	"time"
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
