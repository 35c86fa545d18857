package engine

import (
	"context"
	"sync/atomic"
	"time"
)

// Stats counts what the engine did since the last summary line. A nil
// *Stats counts nothing.
type Stats struct {
	polls, items, chains, errors, echoes atomic.Int64
}

// Summary is what the engine did in one period.
type Summary struct {
	// Polls and Chains are the poll and chain runs, Items the new items
	// the polls found, Errors the runs that failed (retried or not).
	Polls, Items, Chains, Errors int64
	// Echoes are the items skipped as the echo of ghlflow's own writes.
	Echoes int64
}

func (s *Stats) echoed() {
	if s != nil {
		s.echoes.Add(1)
	}
}

func (s *Stats) polled(items int) {
	if s != nil {
		s.polls.Add(1)
		s.items.Add(int64(items))
	}
}

func (s *Stats) chained() {
	if s != nil {
		s.chains.Add(1)
	}
}

func (s *Stats) failed() {
	if s != nil {
		s.errors.Add(1)
	}
}

// Take returns the counts since the last Take and starts again from zero.
func (s *Stats) Take() Summary {
	return Summary{Polls: s.polls.Swap(0), Items: s.items.Swap(0), Chains: s.chains.Swap(0), Errors: s.errors.Swap(0), Echoes: s.echoes.Swap(0)}
}

// summarize logs one line of counts every period until ctx ends.
func (e *Engine) summarize(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := e.stats.Take()
			e.log.Info("summary", "period", every, "polls", s.Polls, "new_items", s.Items, "chains", s.Chains,
				"errors", s.Errors)
		}
	}
}
