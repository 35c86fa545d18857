package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/triggers"
)

// PollRecord is what one poll did, for the run history.
type PollRecord struct {
	Sub    string
	Recipe string
	Slot   int64
	Start  time.Time
	Took   time.Duration
	// Requests is the number of API calls (pages) the poll made.
	Requests int
	// Read is the number of distinct items read.
	Read int
	// New is the number of items found new; Enqueued of those got a new
	// chain task, Duplicates met an existing one (a poll retried after a
	// crash).
	New, Enqueued, Duplicates int
	// Seeded is true for a subscription's first poll.
	Seeded bool
	// Capped is true when the poll stopped at its page cap rather than at
	// the end of the list or at items seen before.
	Capped bool
	// Skipped says why the slot was not polled: the connection is paused,
	// or its daily budget runs low and the poll was stretched.
	Skipped string
	// Err is the failure, "" on success.
	Err string
}

// Budget says how long the polls of a connection should wait apart: every,
// unless its daily API budget runs low (then longer, with a reason).
// LimiterBudget implements it over the shared rate limiter.
type Budget interface {
	Stretch(ctx context.Context, connection string, every time.Duration) (time.Duration, string, error)
}

// PollRecorder keeps poll records; the history store implements it.
type PollRecorder interface {
	RecordPoll(ctx context.Context, rec PollRecord) error
}

// Pauser holds the connections' pauses: polls and chains of a paused
// connection wait, and one that meets an authorization failure pauses its
// connection with a readable reason until it is fixed (Pauses implements
// it).
type Pauser interface {
	PauseConnection(ctx context.Context, connection, reason string) error
	PausedReason(connection string) (string, bool)
}

// ChainEnqueuer puts chain tasks on the queue; *asynq.Client implements it.
type ChainEnqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Poller handles poll tasks: it polls a subscription's trigger, decides
// which items are new, enqueues one chain task per new item (oldest first)
// and only then records the items as seen.
type Poller struct {
	Subs   Subscriptions
	Caller triggers.Caller
	Dedup  *dedup.Store
	Queue  ChainEnqueuer
	// ChainQueue is the asynq queue of chain tasks (default QueueChain).
	ChainQueue string
	// ChainRetention keeps a completed chain task's id reserved (default
	// DefaultChainRetention).
	ChainRetention time.Duration
	// ChainOptions are added to every chain task (MaxRetry, Timeout...).
	ChainOptions []asynq.Option
	// MaxPages caps a poll's pages when the recipe does not (default
	// triggers.DefaultMaxPages).
	MaxPages int
	// SeedMaxPages caps the pages of a subscription's first poll, which
	// walks a list read oldest first to its end to find where it stands
	// (default 100). Lists read newest first stop after the first page.
	SeedMaxPages int
	// PageLimit is the page size asked for (0 = triggers.DefaultLimit).
	PageLimit int
	// Overlap is how far before the watermark a cursor poll asks from, so
	// items at the boundary time are read again and dropped by their keys
	// (default 1 ms).
	Overlap time.Duration
	// Recorder, Pauser and Budget are optional.
	Recorder PollRecorder
	Pauser   Pauser
	Budget   Budget
	Logger   *slog.Logger
	Now      func() time.Time
}

// ProcessTask handles a TypePoll task (asynq.Handler).
func (p *Poller) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl PollPayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return fmt.Errorf("poll payload: %v: %w", err, asynq.SkipRetry)
	}
	_, err := p.Poll(ctx, pl.Sub, pl.Slot)
	return err
}

// Poll polls subscription sub for slot and fans out its new items. Errors
// that a retry cannot fix wrap asynq.SkipRetry.
func (p *Poller) Poll(ctx context.Context, subID string, slot int64) (*PollRecord, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	log := p.logger()
	rec := &PollRecord{Sub: subID, Slot: slot, Start: now()}
	sub, ok := p.Subs.Get(subID)
	if !ok {
		// Removed since the poll was scheduled.
		log.Info("poll of a removed subscription", "sub", subID, "slot", slot)
		return rec, nil
	}
	rec.Recipe = sub.Recipe.Name
	if p.Pauser != nil {
		if reason, paused := p.Pauser.PausedReason(sub.Connection); paused {
			rec.Skipped = "connection " + sub.Connection + " is paused: " + reason
			p.record(ctx, rec)
			return rec, nil
		}
	}
	if skip := p.stretched(ctx, sub, slot); skip != "" {
		rec.Skipped = skip
		log.Info("poll stretched", "sub", subID, "recipe", sub.Recipe.Name, "reason", skip)
		p.record(ctx, rec)
		return rec, nil
	}
	err := p.poll(ctx, sub, rec)
	rec.Took = now().Sub(rec.Start)
	if err != nil {
		rec.Err = err.Error()
		if authFailure(err) {
			if p.Pauser != nil {
				if perr := p.Pauser.PauseConnection(ctx, sub.Connection, err.Error()); perr != nil {
					log.Error("pause connection", "connection", sub.Connection, "err", perr)
				}
			}
			err = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		} else if permanent(err) {
			err = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
	}
	p.record(ctx, rec)
	if err != nil {
		return rec, fmt.Errorf("poll %s (%s): %w", subID, sub.Recipe.Name, err)
	}
	log.Debug("poll", "sub", subID, "recipe", sub.Recipe.Name, "read", rec.Read, "new", rec.New, "requests", rec.Requests)
	return rec, nil
}

// record keeps rec in the run history, if there is one.
func (p *Poller) record(ctx context.Context, rec *PollRecord) {
	if p.Recorder == nil {
		return
	}
	if err := p.Recorder.RecordPoll(ctx, *rec); err != nil {
		p.logger().Warn("record poll", "sub", rec.Sub, "err", err)
	}
}

// stretched returns why slot is skipped when the connection's daily budget
// runs low: of a stretch n times the interval, only every n-th slot polls
// (slots count intervals since the epoch, so every scheduler agrees). ""
// means poll.
func (p *Poller) stretched(ctx context.Context, sub *Subscription, slot int64) string {
	if p.Budget == nil || sub.Every <= 0 {
		return ""
	}
	d, reason, err := p.Budget.Stretch(ctx, sub.Connection, sub.Every)
	if err != nil || d <= sub.Every {
		return ""
	}
	n := int64((d + sub.Every - 1) / sub.Every)
	if slot%n == 0 {
		return ""
	}
	return reason
}

func (p *Poller) poll(ctx context.Context, sub *Subscription, rec *PollRecord) error {
	params, err := sub.Params()
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	opts := triggers.Options{Dedup: sub.Dedup, MaxPages: sub.MaxPages, Limit: p.PageLimit}
	if opts.MaxPages <= 0 {
		opts.MaxPages = p.MaxPages
	}
	st, err := p.Dedup.State(ctx, sub.ID)
	if err != nil {
		return err
	}
	if !st.Seeded {
		opts.MaxPages = p.SeedMaxPages
		if opts.MaxPages <= 0 {
			opts.MaxPages = 100
		}
	}
	if sub.Dedup == catalog.DedupCursor && sub.Op.Since != nil && !st.Watermark.IsZero() {
		overlap := p.Overlap
		if overlap <= 0 {
			overlap = time.Millisecond
		}
		opts.Since = st.Watermark.Add(-overlap)
	}
	// Each page is decided as it arrives (one round trip), to stop the
	// walk where the items become known; the decisions are kept for the
	// fan-out.
	known := map[string]bool{}
	seeded := st.Seeded
	read := 0
	opts.Seen = func(ctx context.Context, page []triggers.Item) (bool, error) {
		d, err := p.Dedup.Decide(ctx, sub.ID, dedupItems(page), 0)
		if err != nil {
			return false, err
		}
		for i, it := range page {
			known[it.Key] = d.Known[i]
		}
		read += len(page)
		if !seeded {
			// A first poll needs only the newest page(s): enough for the
			// backfill; everything older falls under the seed's floor.
			return read >= sub.Backfill, nil
		}
		// Newest first: once the oldest item of a page is known, the rest
		// of the list was seen before; unless that item is known only from
		// its webhook (newer than the watermark), with lost ones under it.
		oldest := page[len(page)-1]
		return d.Known[len(page)-1] && !oldest.Time.After(st.Watermark), nil
	}
	res, err := triggers.Poll(ctx, p.Caller, sub.Connection, sub.Op, params, opts)
	if err != nil {
		return err
	}
	rec.Requests, rec.Read = res.Pages, len(res.Items)
	rec.Capped = !res.End
	// A walk from the top that stops at its cap leaves new items below
	// it; the backlog takes later polls there, down to the watermark.
	resumable := !res.End && seeded && !res.OldestFirst && res.Next != nil && !st.Watermark.IsZero() && opts.Since.IsZero()
	switch {
	case !res.End && res.OldestFirst && opts.Since.IsZero():
		p.logger().Warn("poll stopped at the page cap of a list read oldest first; newer items are out of reach: "+
			"sort the trigger newest first or use the cursor strategy", "sub", sub.ID, "recipe", sub.Recipe.Name, "pages", res.Pages)
	case resumable:
		p.logger().Info("poll reached its page cap before items it had seen; the next polls read on from there",
			"sub", sub.ID, "recipe", sub.Recipe.Name, "pages", res.Pages)
	case !res.End && seeded:
		p.logger().Warn("poll reached the page cap before items it had seen; new items beyond the cap are skipped: "+
			"raise max_pages or poll more often", "sub", sub.ID, "recipe", sub.Recipe.Name, "pages", res.Pages)
	}
	items := dedupItems(res.Items)

	// Items no page decision covered (one-object triggers, lists read
	// oldest first) are decided now.
	var rest []int
	for i, it := range res.Items {
		if _, ok := known[it.Key]; !ok {
			rest = append(rest, i)
		}
	}
	if len(rest) > 0 {
		sel := make([]dedup.Item, len(rest))
		for j, i := range rest {
			sel[j] = items[i]
		}
		d, err := p.Dedup.Decide(ctx, sub.ID, sel, 0)
		if err != nil {
			return err
		}
		for j, i := range rest {
			known[res.Items[i].Key] = d.Known[j]
		}
	}
	rec.Seeded = !seeded
	var fire []triggers.Item
	if !seeded {
		if n := sub.Backfill; n > 0 {
			fire = res.Items[max(0, len(res.Items)-n):]
		}
	} else {
		for _, it := range res.Items {
			if !known[it.Key] {
				fire = append(fire, it)
			}
		}
	}
	// The backlog of an earlier capped poll: its items are older than
	// those found new at the top, so they fire first.
	var next *dedup.Backlog
	var gap []triggers.Item
	backlog := st.Backlog
	if backlog != nil && seeded {
		var gapEnd bool
		var gapNext map[string]any
		gap, gapEnd, gapNext, err = p.walkBacklog(ctx, sub, params, opts, backlog, len(fire), res.Limit, rec)
		if err != nil {
			return err
		}
		if !gapEnd {
			next = &dedup.Backlog{Next: gapNext, Offset: triggers.Position(sub.Op.Paging, gapNext, res.Limit), Floor: backlog.Floor}
		}
	}
	if resumable {
		// A new gap at the top; an older one still open is walked through
		// from here, down to its floor.
		next = &dedup.Backlog{Next: res.Next, Offset: triggers.Position(sub.Op.Paging, res.Next, res.Limit), Floor: st.Watermark}
		if backlog != nil {
			next.Floor = backlog.Floor
		}
	}
	fire = append(gap, fire...)
	rec.New = len(fire)

	// Fan out before marking: a crash in between re-enqueues on the next
	// try and meets the TaskIDs instead of losing or doubling an item.
	for _, it := range fire {
		dup, err := p.enqueueChain(ctx, sub, it, rec.Start)
		if err != nil {
			return err
		}
		if dup {
			rec.Duplicates++
		} else {
			rec.Enqueued++
		}
	}
	if backlog != nil || next != nil {
		return p.Dedup.CommitBacklog(ctx, sub.ID, items, sub.keep(), next)
	}
	return p.Dedup.Commit(ctx, sub.ID, items, sub.keep())
}

// walkBacklog reads on from where an earlier capped poll stopped, pushed
// down by the items found new at the top since (shift), until it meets
// items at or under the backlog's floor, the end of the list, or the page
// cap. It returns the items above the floor, oldest first; end reports
// that the backlog is done, else next is where to go on.
func (p *Poller) walkBacklog(ctx context.Context, sub *Subscription, params map[string]any, opts triggers.Options,
	bl *dedup.Backlog, shift, limit int, rec *PollRecord) (items []triggers.Item, end bool, next map[string]any, err error) {
	// Offset and page styles start at the position pushed down by the new
	// items (a page rounded down may start with items fired before, which
	// meet their chain's TaskID and do not fire again); a cursor holds.
	opts.Start = bl.Next
	if at := triggers.StartAt(sub.Op.Paging, bl.Offset+shift, limit); at != nil {
		opts.Start = at
	}
	floor := bl.Floor
	opts.Seen = func(_ context.Context, page []triggers.Item) (bool, error) {
		oldest := page[len(page)-1]
		return oldest.Time.IsZero() || !oldest.Time.After(floor), nil
	}
	res, err := triggers.Poll(ctx, p.Caller, sub.Connection, sub.Op, params, opts)
	if err != nil {
		return nil, false, nil, fmt.Errorf("backlog: %w", err)
	}
	rec.Requests += res.Pages
	rec.Read += len(res.Items)
	for _, it := range res.Items {
		if it.Time.After(floor) {
			items = append(items, it)
		}
	}
	if !res.End && res.Next == nil {
		return items, true, nil, nil // cannot go on; what was read is fired
	}
	return items, res.End, res.Next, nil
}

func (p *Poller) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// enqueueChain enqueues the chain of one item; dup reports that its task
// already existed.
func (p *Poller) enqueueChain(ctx context.Context, sub *Subscription, it triggers.Item, pollTime time.Time) (dup bool, err error) {
	t := it.Time
	if t.IsZero() {
		t = pollTime
	}
	return p.enqueue(ctx, ChainPayload{Sub: sub.ID, Recipe: sub.Recipe.Name, ItemKey: it.Key, Item: it.Raw, Time: t,
		Enqueued: pollTime})
}

// enqueue puts a chain task on the queue under ChainTaskID(sub, item key),
// the one id of an item whether a poll or a webhook found it; dup reports
// that the task already existed.
func (p *Poller) enqueue(ctx context.Context, pl ChainPayload) (dup bool, err error) {
	payload, err := json.Marshal(pl)
	if err != nil {
		return false, fmt.Errorf("chain payload: %w", err)
	}
	queue := p.ChainQueue
	if queue == "" {
		queue = QueueChain
	}
	retention := p.ChainRetention
	if retention <= 0 {
		retention = DefaultChainRetention
	}
	opts := append([]asynq.Option{asynq.TaskID(ChainTaskID(pl.Sub, pl.ItemKey)), asynq.Queue(queue),
		asynq.Retention(retention)}, p.ChainOptions...)
	_, err = p.Queue.EnqueueContext(ctx, asynq.NewTask(TypeChain, payload), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("enqueue chain of %s: %w", pl.ItemKey, err)
	}
	return false, nil
}

func dedupItems(items []triggers.Item) []dedup.Item {
	out := make([]dedup.Item, len(items))
	for i, it := range items {
		out[i] = dedup.Item{Key: it.Key, Time: it.Time}
	}
	return out
}

// authFailure reports errors that only fixing the connection cures.
func authFailure(err error) bool {
	return errors.Is(err, transport.ErrUnauthorized) || errors.Is(err, transport.ErrScopeMissing) ||
		errors.Is(err, transport.ErrForbidden)
}

// permanent reports errors a retry of the same poll cannot fix (the next
// slot polls again anyway).
func permanent(err error) bool {
	var ve *transport.ValidationError
	var ie *catalog.InputError
	return errors.As(err, &ve) || errors.As(err, &ie) || errors.Is(err, transport.ErrNotFound) ||
		errors.Is(err, transport.ErrInput) || errors.Is(err, transport.ErrConnection)
}

// PollEnqueuer enqueues poll tasks for the scheduler, with the TaskID of
// subscription and slot; an existing task for the slot counts as success.
type PollEnqueuer struct {
	Queue ChainEnqueuer
	// PollQueue is the asynq queue (default QueuePoll).
	PollQueue string
	// Options are added to every poll task after the defaults
	// (MaxRetry 3, Timeout 5 min: the next slot polls again anyway).
	Options []asynq.Option
}

// EnqueuePoll implements scheduler.Enqueuer.
func (e *PollEnqueuer) EnqueuePoll(ctx context.Context, sub string, slot int64) error {
	payload, err := json.Marshal(PollPayload{Sub: sub, Slot: slot})
	if err != nil {
		return err
	}
	q := e.PollQueue
	if q == "" {
		q = QueuePoll
	}
	opts := append([]asynq.Option{asynq.TaskID(PollTaskID(sub, slot)), asynq.Queue(q),
		asynq.MaxRetry(3), asynq.Timeout(5 * time.Minute)}, e.Options...)
	_, err = e.Queue.EnqueueContext(ctx, asynq.NewTask(TypePoll, payload), opts...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue poll %s slot %d: %w", sub, slot, err)
	}
	return nil
}
