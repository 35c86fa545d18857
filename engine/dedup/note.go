package dedup

import "context"

// modeNote records keys without judging them (see rdb.Dedup).
const modeNote = "note"

// Note records items that arrived by webhook and were fired, so the poll
// that later reads them finds them known. Unlike Commit it leaves the
// subscription's seeded flag, watermark, floor and size alone: the polls
// have not walked down to these items yet, and a cursor poll must still
// ask from its own watermark for the items between (whose webhooks may
// have been lost). The next commit trims the set. One round trip.
func (s *Store) Note(ctx context.Context, sub string, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	_, err := s.run(ctx, modeNote, sub, items, 0, 0, "", nil)
	return err
}
