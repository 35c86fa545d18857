package bench

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// runOnce sets up one load, warms it up (every subscription seeded),
// holds it for cfg.Duration with churn (and chaos when configured), waits
// for the last actions and reports.
func runOnce(ctx context.Context, cfg Config) (*Report, error) {
	e, err := setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()
	say := e.progress
	say(fmt.Sprintf("warming up: %d subscriptions (%d tenants × %d recipes) on %d workers", e.subs, cfg.Tenants, cfg.Recipes, cfg.Workers))
	if err := e.waitSeeded(ctx); err != nil {
		return nil, err
	}
	if cfg.faults != "" {
		if err := e.setFaults(ctx, cfg.faults); err != nil {
			return nil, err
		}
	}
	smp := &sampler{}
	first := smp.take(ctx, e)
	loadCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	ch := &churn{}
	churnDone := make(chan struct{})
	go func() { ch.run(loadCtx, e); close(churnDone) }()
	kills := 0
	chaosDone := make(chan struct{})
	go func() {
		if cfg.killEvery > 0 {
			chaos(loadCtx, e, &kills, say)
		}
		close(chaosDone)
	}()
	e.hold(ctx, loadCtx.Done(), smp, first)
	last := smp.take(ctx, e)
	<-churnDone
	<-chaosDone
	memEnd := e.redisInt(ctx, "memory", "used_memory")
	if cfg.faults != "" {
		_ = e.setFaults(ctx, "")
	}
	items := ch.list()
	notes := e.drain(ctx, items)
	rep, err := e.report(ctx, first, last, smp, items, notes)
	if err != nil {
		return nil, err
	}
	rep.Kills, rep.CreateFailures = kills, ch.fails
	if cfg.restartRedis {
		rep.RedisRestarts = 1
	}
	rep.RedisBytesPerSub = float64(memEnd-e.memBase) / float64(e.subs)
	rep.RedisUsedMemory = memEnd
	if cfg.Progress != nil {
		fmt.Fprint(cfg.Progress, "\r\033[K")
	}
	return rep, nil
}

// progress rewrites the progress line.
func (e *env) progress(line string) {
	if e.cfg.Progress != nil {
		fmt.Fprintf(e.cfg.Progress, "\r\033[K%s", line)
	}
}

// hold samples once a second until ctx is done, showing a progress bar
// with the polls served per second against the demand.
func (e *env) hold(ctx context.Context, done <-chan struct{}, smp *sampler, first sample) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := first
	demand := float64(e.subs) / e.cfg.Every.Seconds()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		s := smp.take(ctx, e)
		el := s.At.Sub(first.At)
		frac := min(el.Seconds()/e.cfg.Duration.Seconds(), 1)
		bar := strings.Repeat("=", int(frac*20)) + strings.Repeat(" ", 20-int(frac*20))
		rate := float64(s.SearchReqs-prev.SearchReqs) / s.At.Sub(prev.At).Seconds()
		cpu := float64(s.EngineCPU-prev.EngineCPU) * 1000 / clockTick / s.At.Sub(prev.At).Seconds()
		e.progress(fmt.Sprintf("[%s] %3.0fs/%.0fs  polls/s %6.0f of %.0f  notes %d  engine CPU %3.0f%%",
			bar, el.Seconds(), e.cfg.Duration.Seconds(), rate, demand, s.Writes-first.Writes, cpu/10))
		prev = s
	}
}

// drain waits until every created item has its notes from every recipe or
// cfg.Drain passes, and returns the notes.
func (e *env) drain(ctx context.Context, items []created) map[string][]time.Time {
	want := len(items) * e.cfg.Recipes
	deadline := time.Now().Add(e.cfg.Drain)
	for {
		notes, err := e.notes(ctx)
		got := 0
		if err == nil {
			for _, it := range items {
				for r := range e.cfg.Recipes {
					if len(notes[recipeName(r)+" "+it.ID]) > 0 {
						got++
					}
				}
			}
		}
		e.progress(fmt.Sprintf("draining: %d of %d actions", got, want))
		if (err == nil && got >= want) || time.Now().After(deadline) || ctx.Err() != nil {
			return notes
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}
