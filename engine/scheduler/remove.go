package scheduler

import (
	"context"
	"fmt"
)

// RemoveIDs unschedules the subscriptions with the given ids, whatever
// their interval.
func (s *Scheduler) RemoveIDs(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	members, err := s.client.ZRange(ctx, s.due, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("scheduler remove: %w", err)
	}
	var gone []any
	for _, m := range members {
		if sub, _, ok := parseMember(m); ok && drop[sub] {
			gone = append(gone, m)
		}
	}
	pipe := s.client.TxPipeline()
	if len(gone) > 0 {
		pipe.ZRem(ctx, s.due, gone...)
	}
	pipe.HDel(ctx, s.stretch, ids...) // a stretch outlives nothing it stretched
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("scheduler remove: %w", err)
	}
	return nil
}
