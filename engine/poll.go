package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/policy"
	"github.com/ghlflow/ghlflow/triggers"
)

// Budget says how long the polls of a connection should wait apart: every,
// unless its daily API budget runs low (then longer, with a reason).
// LimiterBudget implements it over the shared rate limiter.
type Budget interface {
	Stretch(ctx context.Context, connection string, every time.Duration) (time.Duration, string, error)
}

// PollRecorder keeps what each poll did; *history.Store implements it.
type PollRecorder interface {
	AddPoll(ctx context.Context, sub string, p history.Poll) error
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
	// Connections (optional) tells templates what a connection stands for.
	Connections ConnectionLookup
	Dedup       *dedup.Store
	Queue       ChainEnqueuer
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
	// Pace, when set, spreads a tenant's chains over time: a tenant's
	// chains start one every interval across its polls, after the free
	// ones an idle tenant has banked (see TenantPace). Recipes naming
	// connections are not paced.
	Pace func(sub *Subscription) (free int, every time.Duration)
	// Pacer keeps the tenants' paces (required with Pace).
	Pacer Pacer
	// TenantCap caps the polls of one tenant in flight in this process (0
	// = no cap): a slot over the cap is skipped and recorded (the next
	// slot polls again), so a tenant whose polls wait on its rate limit
	// leaves workers for the others. Recipes naming connections are not
	// capped.
	TenantCap int
	gate      tenantGate
	// Shared, when set, lets polls of one connection sending the same
	// request in the same slot share one API call (see SharedPages).
	Shared *SharedPages
	// Recorder, Pauser, Budget and Stats are optional.
	Recorder PollRecorder
	Pauser   Pauser
	Budget   Budget
	Stats    *Stats
	Logger   *slog.Logger
	Now      func() time.Time
	// Metrics, when set, counts the polls by result, their lag and items.
	Metrics *Metrics
	// SubPauses, when set, skips the polls of paused subscriptions (a
	// pause is seen within a second).
	SubPauses *SubPauses
	// LogPolls logs each poll at info level instead of debug.
	LogPolls bool
}

// ProcessTask handles a TypePoll task (asynq.Handler).
func (p *Poller) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl PollPayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return policy.Permanent(fmt.Errorf("poll payload: %w", err))
	}
	var due time.Time
	if pl.Due > 0 {
		due = time.UnixMilli(pl.Due)
	}
	_, err := p.PollDue(ctx, pl.Sub, pl.Slot, due)
	return err
}

// Poll polls subscription sub for slot and fans out its new items. What
// follows a failure is policy.Decide's answer: an authorization failure
// pauses the connection, and the errors a retry cannot fix are marked
// permanent (they wrap asynq.SkipRetry).
func (p *Poller) Poll(ctx context.Context, subID string, slot int64) (*history.Poll, error) {
	return p.PollDue(ctx, subID, slot, time.Time{})
}

// PollDue is Poll of a slot due at due: the record keeps how late the poll
// started (its lag; not recorded when due is zero).
func (p *Poller) PollDue(ctx context.Context, subID string, slot int64, due time.Time) (*history.Poll, error) {
	rec := &history.Poll{Sub: subID, Slot: slot, Time: p.now()}
	if !due.IsZero() {
		rec.Lag = max(rec.Time.Sub(due), time.Millisecond).Round(time.Millisecond)
	}
	sub, ok := p.Subs.Get(subID)
	if !ok {
		// Removed since the poll was scheduled.
		p.logger().Info("poll of a removed subscription", "sub", subID, "slot", slot)
		return rec, nil
	}
	rec.Recipe = sub.Recipe.Name
	if p.SubPauses != nil {
		if p.SubPauses.Paused(ctx, subID) {
			rec.Skipped = "subscription paused"
			p.record(ctx, rec)
			return rec, nil
		}
	}
	if p.Pauser != nil {
		if reason, paused := p.Pauser.PausedReason(sub.Connection); paused {
			rec.Skipped = "connection " + sub.Connection + " is paused: " + reason
			p.record(ctx, rec)
			return rec, nil
		}
	}
	release, busy := p.admit(sub)
	if busy != "" {
		rec.Skipped = busy
		p.record(ctx, rec)
		return rec, nil
	}
	defer release()
	if skip := p.stretched(ctx, sub, slot); skip != "" {
		rec.Skipped = skip
		p.logger().Info("poll stretched", "sub", subID, "recipe", sub.Recipe.Name, "reason", skip)
		p.record(ctx, rec)
		return rec, nil
	}
	c, err := p.poll(ctx, sub, rec)
	rec.Took = p.now().Sub(rec.Time)
	if busy := (*pollBusy)(nil); errors.As(err, &busy) {
		rec.Skipped = busy.reason
		p.record(ctx, rec)
		return rec, nil
	}
	recorded := false
	if err == nil {
		recorded, err = p.commit(ctx, sub, c, rec)
	}
	p.Stats.polled(rec.New)
	if err != nil {
		rec.Error = err.Error()
		err = p.decide(ctx, sub, err)
	}
	if recorded {
		p.observe(rec)
	} else {
		p.record(ctx, rec)
	}
	if err != nil {
		return rec, fmt.Errorf("poll %s (%s): %w", subID, sub.Recipe.Name, err)
	}
	level := slog.LevelDebug
	if p.LogPolls {
		level = slog.LevelInfo
	}
	p.logger().Log(ctx, level, "poll", "tenant", sub.Tenant.ID, "recipe", sub.Recipe.Name, "sub", subID, "connection", sub.Connection,
		"slot", slot, "read", rec.Read, "new", rec.New, "requests", rec.Requests, "shared", rec.Shared, "lag", rec.Lag,
		"took", rec.Took.Round(time.Millisecond))
	return rec, nil
}

// decide applies the error policy to a failed poll: it pauses the
// connection of an authorization failure and marks what a retry of the
// same slot cannot fix (the next slot polls again anyway).
func (p *Poller) decide(ctx context.Context, sub *Subscription, err error) error {
	switch policy.Decide(err).Action {
	case policy.Pause:
		if p.Pauser != nil {
			if perr := p.Pauser.PauseConnection(ctx, sub.Connection, err.Error()); perr != nil {
				p.logger().Error("pause connection", "connection", sub.Connection, "err", perr)
			}
		}
		return policy.Permanent(err)
	case policy.Fail:
		return policy.Permanent(err)
	}
	return err
}

func (p *Poller) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// observe counts rec in the metrics, if there are any.
func (p *Poller) observe(rec *history.Poll) {
	if p.Metrics != nil {
		p.Metrics.observePoll(rec)
	}
}

// record keeps rec in the run history, if there is one.
func (p *Poller) record(ctx context.Context, rec *history.Poll) {
	p.observe(rec)
	if p.Recorder == nil {
		return
	}
	if err := p.Recorder.AddPoll(ctx, rec.Sub, *rec); err != nil {
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

// pollPlan is what a poll starts from: the rendered params, the walk's
// options and the subscription's dedup state.
type pollPlan struct {
	params map[string]any
	opts   triggers.Options
	state  dedup.State
	// known holds the dedup decision of every item a page decision
	// covered (true = seen before).
	known map[string]bool
	// caller reads the trigger's pages; shared counts the pages it read
	// from another poll's call.
	caller triggers.Caller
	shared atomic.Int64
}

// pollAppender is a PollRecorder that hands a poll's record to the dedup
// commit, which writes both in one script call (*history.Store).
type pollAppender interface {
	PollAppend(sub string, p history.Poll) (*dedup.Append, error)
}

// pendingCommit is what a poll records once its chains are enqueued: every
// item read, and the backlog to leave (when setBacklog).
type pendingCommit struct {
	items      []dedup.Item
	setBacklog bool
	backlog    *dedup.Backlog
}

// commit records the poll's items as seen and, when the Recorder can hand
// it over, the poll's record in the same script call; recorded reports
// that rec was written.
func (p *Poller) commit(ctx context.Context, sub *Subscription, c *pendingCommit, rec *history.Poll) (recorded bool, err error) {
	var app *dedup.Append
	if pa, ok := p.Recorder.(pollAppender); ok {
		if app, err = pa.PollAppend(sub.ID, *rec); err != nil {
			p.logger().Warn("record poll", "sub", sub.ID, "err", err)
			app = nil
		}
	}
	if err := p.Dedup.CommitAppend(ctx, sub.ID, c.items, sub.keep(), c.setBacklog, c.backlog, app); err != nil {
		return false, err
	}
	return app != nil, nil
}

// poll runs the stages of one poll: plan, walk the pages, decide what is
// new, merge the backlog of an earlier capped poll, fan out; what it
// returns is committed after (see commit).
func (p *Poller) poll(ctx context.Context, sub *Subscription, rec *history.Poll) (*pendingCommit, error) {
	pl, err := p.plan(ctx, sub)
	if err != nil {
		return nil, err
	}
	pl.caller = p.Caller
	if p.Shared != nil {
		pl.caller = p.Shared.caller(p.gated(sub, p.Caller), rec.Slot, sub.Every, &pl.shared)
		defer func() {
			rec.Shared = int(pl.shared.Load())
			rec.Requests -= rec.Shared
		}()
	}
	res, err := p.walk(ctx, sub, pl, rec)
	if err != nil {
		return nil, err
	}
	fire, err := p.decideNew(ctx, sub, pl, res)
	if err != nil {
		return nil, err
	}
	rec.Seeded = !pl.state.Seeded
	gap, next, err := p.mergeBacklog(ctx, sub, pl, res, len(fire), rec)
	if err != nil {
		return nil, err
	}
	fire = append(gap, fire...)
	rec.New = len(fire)
	// Fan out before marking: a crash in between re-enqueues on the next
	// try and meets the TaskIDs instead of losing or doubling an item.
	if err := p.fanOut(ctx, sub, fire, rec); err != nil {
		return nil, err
	}
	return &pendingCommit{items: dedupItems(res.Items), setBacklog: pl.state.Backlog != nil || next != nil,
		backlog: next}, nil
}

// plan renders the params and sets the walk's options from the
// subscription and its dedup state.
func (p *Poller) plan(ctx context.Context, sub *Subscription) (*pollPlan, error) {
	params, err := sub.ParamsFor(ctx, p.Connections)
	if err != nil {
		return nil, err
	}
	opts := triggers.Options{Dedup: sub.Dedup, MaxPages: sub.MaxPages, Limit: p.PageLimit}
	if opts.MaxPages <= 0 {
		opts.MaxPages = p.MaxPages
	}
	st, err := p.Dedup.State(ctx, sub.ID)
	if err != nil {
		return nil, err
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
	return &pollPlan{params: params, opts: opts, state: st, known: map[string]bool{}}, nil
}

// walk reads the trigger's pages. Each page is decided as it arrives (one
// round trip), to stop the walk where the items become known; the
// decisions are kept in pl.known for decideNew.
func (p *Poller) walk(ctx context.Context, sub *Subscription, pl *pollPlan, rec *history.Poll) (*triggers.Result, error) {
	opts := pl.opts
	read := 0
	opts.Seen = func(ctx context.Context, page []triggers.Item) (bool, error) {
		d, err := p.Dedup.Decide(ctx, sub.ID, dedupItems(page), 0)
		if err != nil {
			return false, err
		}
		for i, it := range page {
			pl.known[it.Key] = d.Known[i]
		}
		read += len(page)
		if !pl.state.Seeded {
			// A first poll needs only the newest page(s): enough for the
			// backfill; everything older falls under the seed's floor.
			return read >= sub.Backfill, nil
		}
		// Newest first: once the oldest item of a page is known, the rest
		// of the list was seen before; unless that item is known only from
		// its webhook (newer than the watermark), with lost ones under it.
		oldest := page[len(page)-1]
		return d.Known[len(page)-1] && !oldest.Time.After(pl.state.Watermark), nil
	}
	res, err := triggers.Poll(ctx, pl.caller, sub.Connection, sub.Op, pl.params, opts)
	if err != nil {
		return nil, err
	}
	rec.Requests, rec.Read = res.Pages, len(res.Items)
	rec.Capped = !res.End
	p.warnCapped(sub, pl, res)
	return res, nil
}

// resumable reports whether a walk from the top stopped at its cap with
// new items below it, which the backlog takes later polls to, down to the
// watermark.
func (pl *pollPlan) resumable(res *triggers.Result) bool {
	return !res.End && pl.state.Seeded && !res.OldestFirst && res.Next != nil && !pl.state.Watermark.IsZero() &&
		pl.opts.Since.IsZero()
}

// warnCapped says what a walk stopped by its page cap leaves out.
func (p *Poller) warnCapped(sub *Subscription, pl *pollPlan, res *triggers.Result) {
	log := p.logger().With("sub", sub.ID, "recipe", sub.Recipe.Name, "pages", res.Pages)
	switch {
	case !res.End && res.OldestFirst && pl.opts.Since.IsZero():
		log.Warn("poll stopped at the page cap of a list read oldest first; newer items are out of reach: " +
			"sort the trigger newest first or use the cursor strategy")
	case pl.resumable(res):
		log.Info("poll reached its page cap before items it had seen; the next polls read on from there")
	case !res.End && pl.state.Seeded:
		log.Warn("poll reached the page cap before items it had seen; new items beyond the cap are skipped: " +
			"raise max_pages or poll more often")
	}
}

// decideNew returns the items to fire, oldest first: on a first poll the
// backfill, later the items not seen before. Items no page decision
// covered (one-object triggers, lists read oldest first) are decided now.
func (p *Poller) decideNew(ctx context.Context, sub *Subscription, pl *pollPlan, res *triggers.Result) ([]triggers.Item, error) {
	var rest []triggers.Item
	for _, it := range res.Items {
		if _, ok := pl.known[it.Key]; !ok {
			rest = append(rest, it)
		}
	}
	if len(rest) > 0 {
		d, err := p.Dedup.Decide(ctx, sub.ID, dedupItems(rest), 0)
		if err != nil {
			return nil, err
		}
		for j, it := range rest {
			pl.known[it.Key] = d.Known[j]
		}
	}
	var fire []triggers.Item
	if !pl.state.Seeded {
		if n := sub.Backfill; n > 0 {
			fire = res.Items[max(0, len(res.Items)-n):]
		}
		return fire, nil
	}
	for _, it := range res.Items {
		if !pl.known[it.Key] {
			fire = append(fire, it)
		}
	}
	return fire, nil
}

// mergeBacklog walks the backlog of an earlier capped poll (its items are
// older than those found new at the top, so they fire first) and returns
// them with the backlog the commit leaves for the next polls (nil: none).
func (p *Poller) mergeBacklog(ctx context.Context, sub *Subscription, pl *pollPlan, res *triggers.Result, shift int,
	rec *history.Poll) (gap []triggers.Item, next *dedup.Backlog, err error) {
	backlog := pl.state.Backlog
	pager := triggers.NewPager(sub.Op.Paging, res.Limit)
	if backlog != nil && pl.state.Seeded {
		var end bool
		var at map[string]any
		gap, end, at, err = p.walkBacklog(ctx, sub, pl, backlog, pager, shift, rec)
		if err != nil {
			return nil, nil, err
		}
		if !end {
			next = &dedup.Backlog{Next: at, Offset: pager.Position(at), Floor: backlog.Floor}
		}
	}
	if pl.resumable(res) {
		// A new gap at the top; an older one still open is walked through
		// from here, down to its floor.
		next = &dedup.Backlog{Next: res.Next, Offset: pager.Position(res.Next), Floor: pl.state.Watermark}
		if backlog != nil {
			next.Floor = backlog.Floor
		}
	}
	return gap, next, nil
}

// walkBacklog reads on from where an earlier capped poll stopped, pushed
// down by the items found new at the top since (shift), until it meets
// items at or under the backlog's floor, the end of the list, or the page
// cap. It returns the items above the floor, oldest first; end reports
// that the backlog is done, else next is where to go on.
func (p *Poller) walkBacklog(ctx context.Context, sub *Subscription, pl *pollPlan, bl *dedup.Backlog, pager triggers.Pager,
	shift int, rec *history.Poll) (items []triggers.Item, end bool, next map[string]any, err error) {
	// Offset and page styles start at the position pushed down by the new
	// items (a page rounded down may start with items fired before, which
	// meet their chain's TaskID and do not fire again); a cursor holds.
	opts := pl.opts
	opts.Start = bl.Next
	if at := pager.StartAt(bl.Offset + shift); at != nil {
		opts.Start = at
	}
	floor := bl.Floor
	opts.Seen = func(_ context.Context, page []triggers.Item) (bool, error) {
		oldest := page[len(page)-1]
		return oldest.Time.IsZero() || !oldest.Time.After(floor), nil
	}
	res, err := triggers.Poll(ctx, pl.caller, sub.Connection, sub.Op, pl.params, opts)
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

// fanOut enqueues one chain task per item, oldest first.
func (p *Poller) fanOut(ctx context.Context, sub *Subscription, fire []triggers.Item, rec *history.Poll) error {
	delays := p.paces(ctx, sub, len(fire))
	for i, it := range fire {
		var delay time.Duration
		if delays != nil {
			delay = delays[i]
		}
		dup, err := p.enqueueChain(ctx, sub, it, rec.Time, delay)
		if err != nil {
			return err
		}
		if dup {
			rec.Duplicates++
		} else {
			rec.Enqueued++
		}
	}
	return nil
}

func (p *Poller) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// enqueueChain enqueues the chain of one item; dup reports that its task
// already existed.
func (p *Poller) enqueueChain(ctx context.Context, sub *Subscription, it triggers.Item, pollTime time.Time, delay time.Duration) (dup bool, err error) {
	t := it.Time
	if t.IsZero() {
		t = pollTime
	}
	return p.enqueue(ctx, ChainPayload{Sub: sub.ID, Recipe: sub.Recipe.Name, ItemKey: it.Key, Item: it.Raw, Time: t,
		Enqueued: pollTime}, delay)
}

// enqueue puts a chain task on the queue under ChainTaskID(sub, item key),
// the one id of an item whether a poll or a webhook found it, to start
// after delay; dup reports that the task already existed.
func (p *Poller) enqueue(ctx context.Context, pl ChainPayload, delay time.Duration) (dup bool, err error) {
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
	if delay > 0 {
		opts = append(opts, asynq.ProcessIn(delay))
	}
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
