package engine

import (
	"context"
	"math"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/scheduler"
)

// SkippedInFlight is the poll history's reason for a slot skipped because
// the subscription's previous poll is still pending or running.
const SkippedInFlight = "previous poll still running"

// Defaults of the load watch.
const (
	// DefaultPlanEvery is how often the schedule is planned against the
	// API budgets.
	DefaultPlanEvery = 5 * time.Second
	// DefaultSaturationEvery is how often, at most, the engine warns that
	// it is saturated.
	DefaultSaturationEvery = time.Minute
)

// onSkip counts a slot skipped because the previous poll of sub is still
// in flight and records it in the poll history.
func (e *Engine) onSkip(ctx context.Context, sub string, slot int64) {
	if m := e.cfg.Metrics; m != nil {
		m.PollSlots.WithLabelValues("skipped").Inc()
	}
	if err := e.History.AddPoll(ctx, sub, history.Poll{Time: time.Now(), Slot: slot, Skipped: SkippedInFlight}); err != nil {
		e.log.Warn("record skipped poll", "sub", sub, "err", err)
	}
}

// countPolls counts the poll tasks the workers run.
func (e *Engine) countPolls(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		e.served.Add(1)
		if m := e.cfg.Metrics; m != nil {
			m.Polls.Inc()
		}
		return h.ProcessTask(ctx, t)
	})
}

// watchLoad plans the schedule against the API budgets and watches for
// saturation until ctx ends.
func (e *Engine) watchLoad(ctx context.Context) {
	t := time.NewTicker(e.cfg.PlanEvery)
	defer t.Stop()
	w := loadWindow{start: time.Now(), counts: e.sched.Counts()}
	last := w.counts
	for {
		e.plan(ctx)
		c := e.sched.Counts()
		if m := e.cfg.Metrics; m != nil {
			m.PollSlots.WithLabelValues("enqueued").Add(float64(c.Enqueued - last.Enqueued))
			m.PollSlots.WithLabelValues("deferred").Add(float64(c.Deferred - last.Deferred))
		}
		last = c
		if time.Since(w.start) >= e.cfg.SaturationEvery {
			e.warnSaturated(w, c)
			w = loadWindow{start: time.Now(), counts: c, served: e.served.Load()}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loadWindow is where a saturation window started.
type loadWindow struct {
	start  time.Time
	counts scheduler.Counts
	served int64
}

// warnSaturated logs a WARN when slots were skipped since w started: the
// workers do not keep up with the schedule.
func (e *Engine) warnSaturated(w loadWindow, now scheduler.Counts) {
	skipped := now.Skipped - w.counts.Skipped
	if skipped <= 0 {
		return
	}
	secs := time.Since(w.start).Seconds()
	demanded := float64(now.Enqueued-w.counts.Enqueued+skipped) / secs
	served := float64(e.served.Load()-w.served) / secs
	attrs := []any{"demanded_per_s", round1(demanded), "skipped", skipped,
		"window", time.Duration(secs * float64(time.Second)).Round(time.Second)}
	if e.roles&RoleWorker != 0 {
		attrs = append(attrs, "served_per_s", round1(served))
	}
	if info, err := e.inspector.GetQueueInfo(QueueName(e.cfg.Prefix, QueuePoll)); err == nil {
		attrs = append(attrs, "queued", info.Pending, "running", info.Active)
	}
	e.log.Warn("engine saturated: polls wait for earlier ones of the same subscription, their slots are skipped", attrs...)
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// plan stretches the schedule of the subscriptions whose demand passes
// their API budget, when the Budget is a Planner, and records each change
// in the subscription's poll history.
func (e *Engine) plan(ctx context.Context) {
	p, ok := e.cfg.Budget.(Planner)
	if !ok {
		return
	}
	plan, err := p.Plan(ctx, e.reg.All())
	if err != nil {
		e.log.Warn("plan polls against the API budgets", "err", err)
	}
	subs := e.reg.All()
	entries := make([]scheduler.Entry, 0, len(subs))
	stretched := 0
	for _, sub := range subs {
		en := e.entry(sub)
		if st, ok := plan[sub.ID]; ok {
			// Steps of 5 %, rounded up: small drifts do not move the plan
			// (less a hair, so a factor on a step, 10.85, is not pushed to
			// the next by its binary fraction).
			en.Stretch = math.Ceil(st.Factor*20-1e-9) / 20
			en.Phase = st.Phase
			stretched++
		}
		entries = append(entries, en)
	}
	changed, err := e.sched.SetStretch(ctx, entries)
	if err != nil {
		e.log.Warn("stretch polls", "err", err)
		return
	}
	if m := e.cfg.Metrics; m != nil {
		m.Stretched.Set(float64(stretched))
	}
	for sub, f := range changed {
		reason := plan[sub].Reason
		if f <= 1 {
			f, reason = 1, "the demand fits the API budget again; polls back at their interval"
		}
		if err := e.History.AddPoll(ctx, sub, history.Poll{Time: time.Now(), Stretch: f, StretchReason: reason}); err != nil {
			e.log.Warn("record stretch", "sub", sub, "err", err)
		}
	}
	if len(changed) > 0 {
		e.log.Info("poll stretch changed for the API budgets", "changed", len(changed), "stretched", stretched)
	}
}
