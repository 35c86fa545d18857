package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/echo"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/policy"
)

// Chain statuses in the run history and the log.
const (
	ChainCompleted = "completed"
	ChainFiltered  = "filtered"
	ChainRetry     = "retry"
	ChainFailed    = "failed"
	ChainPaused    = "paused"
	ChainRemoved   = "removed"
	// ChainEcho is an item skipped as the echo of a write of ghlflow's own
	// (engine/echo): a two-way sync does not send it back.
	ChainEcho = "echo"
)

// RecordedChainStatuses are the statuses a chain run can have in the run
// history (removed and busy runs are not recorded).
func RecordedChainStatuses() []string {
	return []string{ChainCompleted, ChainFiltered, ChainRetry, ChainFailed, ChainPaused, ChainEcho}
}

// ChainResult is what one run of a chain task did.
type ChainResult struct {
	Sub, Recipe, ItemKey, TaskID string
	// Status is one of the Chain* statuses.
	Status string
	// Steps is the number of steps completed, Resumed of those came from
	// checkpoints of an earlier attempt.
	Steps, Resumed int
	Took           time.Duration
	Err            error
	// Record is the run as the history keeps it and the task's result
	// shows it: status, steps and the ids of what they wrote.
	Record history.Chain
}

// Chainer handles chain tasks: it evaluates the recipe's filter, runs each
// step and checkpoints each step's output in Redis, so a retry resumes after
// the last completed step.
type Chainer struct {
	Subs   Subscriptions
	Runner *actions.Runner
	Redis  redis.UniversalClient
	// Prefix goes before the checkpoint keys.
	Prefix string
	// Retention is how long checkpoints live (default DefaultChainRetention).
	Retention time.Duration
	// History, Pauser and OnDone are optional.
	History *history.Store
	Pauser  Pauser
	// PauseHold is how long a chain of a paused connection waits for the
	// connection to be fixed, retried every PauseRetry without spending
	// its retries, before it goes to the archive (default
	// DefaultPauseHold).
	PauseHold time.Duration
	// OnDone is called after every run (the log line of `ghlflow run`).
	OnDone func(ChainResult)
	// OnStart, when set, is called as a chain task starts its first
	// attempt (the webhook to chain start latency).
	OnStart func(ChainPayload)
	// Stats, when set, counts the runs for the engine's summary line.
	Stats *Stats
	// Connections (optional) tells templates what a connection stands for.
	Connections ConnectionLookup
	// TenantCap caps the chains of one tenant in flight in this process
	// (0 = no cap), so a tenant's burst leaves workers for the others; a
	// chain over the cap goes back to the queue (ChainBusy) without
	// spending a retry. Recipes naming connections are not capped.
	TenantCap int
	// Echo, when set, recognises items that are the echo of a step's own
	// write; they end as ChainEcho without running the steps.
	Echo   *echo.Store
	Logger *slog.Logger

	gate tenantGate
}

func (c *Chainer) ckptKey(sub, taskID string) string {
	return rdb.NewKeys(c.Prefix).Checkpoint(sub, taskID)
}

// ProcessTask handles a TypeChain task (asynq.Handler). The run's record
// (status, steps, the ids of what the steps wrote) is the task's result,
// which asynqmon shows.
func (c *Chainer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl ChainPayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return policy.Permanent(fmt.Errorf("chain payload: %w", err))
	}
	taskID, _ := asynq.GetTaskID(ctx)
	if taskID == "" {
		taskID = ChainTaskID(pl.Sub, pl.ItemKey)
	}
	if n, _ := asynq.GetRetryCount(ctx); n == 0 && c.OnStart != nil {
		c.OnStart(pl)
	}
	res := c.Run(ctx, pl, taskID)
	c.Stats.chained()
	if w := t.ResultWriter(); w != nil {
		if b, err := json.Marshal(res.Record); err == nil {
			if _, err := w.Write(b); err != nil {
				c.logger().Debug("chain result", "task", taskID, "err", err)
			}
		}
	}
	if c.OnDone != nil {
		c.OnDone(res)
	}
	return res.Err
}

// Run runs the chain of one item; the result's Err is what the asynq
// handler returns (wrapping asynq.SkipRetry when a retry cannot help).
func (c *Chainer) Run(ctx context.Context, pl ChainPayload, taskID string) (res ChainResult) {
	start := time.Now()
	res = ChainResult{Sub: pl.Sub, Recipe: pl.Recipe, ItemKey: pl.ItemKey, TaskID: taskID,
		Record: history.Chain{Time: start, Recipe: pl.Recipe, ItemKey: pl.ItemKey, TaskID: taskID, Steps: []history.Step{}}}
	defer func() {
		res.Took = time.Since(start)
		res.Record.Took, res.Record.Status = res.Took, res.Status
		if res.Err != nil {
			res.Record.Error = res.Err.Error()
		}
		if c.History != nil && res.Status != ChainRemoved && res.Status != ChainBusy {
			tenantID := ""
			if s, ok := c.Subs.Get(pl.Sub); ok && s.Tenant != nil {
				tenantID = s.Tenant.ID
			}
			if err := c.History.AddChain(context.WithoutCancel(ctx), tenantID, pl.Sub, res.Record); err != nil {
				c.logger().Warn("chain history", "sub", pl.Sub, "err", err)
			}
		}
	}()
	sub, ok := c.lookup(pl, &res)
	if !ok {
		return res
	}
	release, err := c.admitTenant(sub)
	if err != nil {
		res.Status, res.Err = ChainBusy, err
		return res
	}
	defer release()
	if c.isEcho(ctx, sub, pl) {
		res.Status = ChainEcho
		c.Stats.echoed()
		return res
	}
	item, ok := c.admit(sub, pl, &res)
	if !ok {
		return res
	}
	c.runSteps(ctx, sub, pl, item, &res)
	return res
}

// lookup finds the subscription of a chain; a chain of a paused tenant
// (or one that uninstalled the app) waits for it to be active again, one
// of a paused connection for the fix, one of a removed subscription ends.
func (c *Chainer) lookup(pl ChainPayload, res *ChainResult) (*Subscription, bool) {
	sub, ok := c.Subs.Get(pl.Sub)
	if ok && sub.Tenant != nil && !sub.Tenant.Active() {
		res.Status = ChainPaused
		res.Err = c.paused(pl, &PausedError{Tenant: sub.Tenant.ID, Reason: "its status is " + sub.Tenant.Status})
		return nil, false
	}
	if ok && c.Pauser != nil {
		// A chain of a paused connection waits for the fix.
		if reason, paused := c.Pauser.PausedReason(sub.Connection); paused {
			res.Status = ChainPaused
			res.Err = c.paused(pl, &PausedError{Connection: sub.Connection, Reason: reason})
			return nil, false
		}
	}
	if ok {
		return sub, true
	}
	res.Status = ChainRemoved
	c.logger().Info("chain of a removed subscription", "sub", pl.Sub, "recipe", pl.Recipe, "item", pl.ItemKey)
	return nil, false
}

// admit decodes the item and evaluates the recipe's filter.
func (c *Chainer) admit(sub *Subscription, pl ChainPayload, res *ChainResult) (any, bool) {
	r := sub.Recipe
	var item any
	err := json.Unmarshal(pl.Item, &item)
	pass := false
	if err == nil {
		pass, err = actions.FilterFor(r, sub.binding(c.Connections), item)
	}
	switch {
	case err != nil:
		res.Status, res.Err = ChainFailed, policy.Permanent(fmt.Errorf("chain %s item %s: %w", r.Name, pl.ItemKey, err))
	case !pass:
		res.Status = ChainFiltered
	}
	return item, err == nil && pass
}

// runSteps runs the steps after the last checkpointed one, checkpointing
// each step's output.
func (c *Chainer) runSteps(ctx context.Context, sub *Subscription, pl ChainPayload, item any, res *ChainResult) {
	r := sub.Recipe
	key := c.ckptKey(pl.Sub, res.TaskID)
	saved, err := c.Redis.HGetAll(ctx, key).Result()
	if err != nil {
		res.Status, res.Err = ChainRetry, fmt.Errorf("chain %s item %s: checkpoints: %w", r.Name, pl.ItemKey, err)
		return
	}
	outs := make([]any, 0, len(r.Steps))
	var input map[string]any
	b := sub.binding(c.Connections)
	b.Rendered = func(_ int, in map[string]any) { input = in }
	for i := range r.Steps {
		op := r.Steps[i].Op
		if out, ok := resumed(saved, i); ok {
			outs = append(outs, out)
			res.Steps++
			res.Resumed++
			res.Record.Steps = append(res.Record.Steps, history.Step{Op: op, Status: "resumed", ID: outputID(out),
				Output: history.StepJSON(out)})
			continue
		}
		input = nil
		start := time.Now()
		out, ran, err := c.Runner.RunStepWhen(ctx, r, i, b, item, outs)
		step := history.Step{Op: op, Status: "done", Input: history.StepJSON(input), Took: time.Since(start)}
		if !ran {
			step.Status = "skipped"
		}
		if err != nil {
			step.Status, step.Error = "failed", err.Error()
			res.Record.Steps = append(res.Record.Steps, step)
			c.stepFailed(ctx, sub, pl, err, res)
			return
		}
		c.checkpoint(ctx, key, pl.Sub, i, out)
		outs = append(outs, out)
		res.Steps++
		step.ID, step.Output = outputID(out), history.StepJSON(out)
		res.Record.Steps = append(res.Record.Steps, step)
	}
	res.Status = ChainCompleted
}

// isEcho reports whether the item is the echo of a step's own write to the
// same object through the trigger's connection.
func (c *Chainer) isEcho(ctx context.Context, sub *Subscription, pl ChainPayload) bool {
	if c.Echo == nil || sub.Op == nil || sub.Op.ItemID == "" || strings.HasPrefix(sub.Op.ItemID, "[") {
		return false
	}
	id := gjson.GetBytes(pl.Item, sub.Op.ItemID).String()
	var item map[string]any
	if id == "" || json.Unmarshal(pl.Item, &item) != nil {
		return false
	}
	changes := sub.Dedup == catalog.DedupUpdated || sub.Dedup == catalog.DedupChanged
	hit, err := c.Echo.Match(ctx, sub.Connection, id, sub.ID, changes, c.writesTo(sub), item)
	if err != nil {
		c.logger().Warn("chain echo", "sub", pl.Sub, "item", pl.ItemKey, "err", err)
	}
	return hit
}

// writesTo reports whether a step of sub's recipe writes through a
// connection (its roles resolved for sub's tenant).
func (c *Chainer) writesTo(sub *Subscription) func(conn string) bool {
	return func(conn string) bool {
		b := sub.binding(c.Connections)
		for i := range sub.Recipe.Steps {
			st := &sub.Recipe.Steps[i]
			op := c.Runner.Catalog.Op(st.Op)
			if op != nil && actions.IsWrite(op) && b.ConnectionOf(actions.Connection(sub.Recipe, st)) == conn {
				return true
			}
		}
		return false
	}
}

// RecordWrite keeps the fingerprint of a step's write (actions.Runner's
// OnWrite): the object is the output's id, or the last path input named
// *Id (the contact whose tags a step added). A POST whose output names an
// object its path does not (a task created under a contact) created it.
func (c *Chainer) RecordWrite(ctx context.Context, w actions.Write) {
	if c.Echo == nil {
		return
	}
	id := outputID(w.Output)
	created := id != "" && w.Op.Method == "POST"
	for _, in := range w.Op.Inputs {
		v, ok := w.Input[in.Name].(string)
		if !ok || in.In != "path" || v == "" {
			continue
		}
		if v == id {
			created = false
		}
		if outputID(w.Output) == "" && strings.HasSuffix(in.Name, "Id") {
			id = v
		}
	}
	if id == "" {
		return
	}
	if err := c.Echo.Record(ctx, w.Connection, id, w.Source, created, w.Input); err != nil {
		c.logger().Warn("chain echo record", "op", w.Op.ID, "err", err)
	}
}

// resumed returns step i's output checkpointed by an earlier attempt.
func resumed(saved map[string]string, i int) (any, bool) {
	raw, ok := saved[strconv.Itoa(i)]
	if !ok {
		return nil, false
	}
	var out any
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, false
	}
	return out, true
}

// checkpoint keeps step i's output, so a retry resumes after it.
func (c *Chainer) checkpoint(ctx context.Context, key, sub string, i int, out any) {
	retention := c.Retention
	if retention <= 0 {
		retention = DefaultChainRetention
	}
	b, err := json.Marshal(out)
	if err != nil {
		b = []byte("null")
	}
	p := c.Redis.TxPipeline()
	p.HSet(ctx, key, strconv.Itoa(i), b)
	p.Expire(ctx, key, retention)
	if _, err := p.Exec(ctx); err != nil {
		// The step ran; without its checkpoint a retry would repeat it.
		c.logger().Warn("chain checkpoint", "sub", sub, "step", i, "err", err)
	}
}

// outputID is the id of what a step wrote, when its output names one.
func outputID(out any) string {
	m, ok := out.(map[string]any)
	if !ok {
		return ""
	}
	switch id := m["id"].(type) {
	case string:
		return id
	case float64:
		return strconv.FormatFloat(id, 'f', -1, 64)
	}
	return ""
}

// stepFailed applies the error policy to a step's failure: retry (also
// after a rate limit), pause the step's connection and wait for the fix,
// or fail to the archive.
func (c *Chainer) stepFailed(ctx context.Context, sub *Subscription, pl ChainPayload, err error, res *ChainResult) {
	r := sub.Recipe
	switch policy.Decide(err).Action {
	case policy.Pause:
		conn := sub.Connection
		var se *actions.StepError
		if errors.As(err, &se) {
			conn = sub.StepConnection(se.Step)
		}
		if c.Pauser != nil {
			if perr := c.Pauser.PauseConnection(ctx, conn, err.Error()); perr != nil {
				c.logger().Error("pause connection", "connection", conn, "err", perr)
			}
		}
		res.Status = ChainPaused
		res.Err = c.paused(pl, &PausedError{Connection: conn, Reason: err.Error(), err: err})
	case policy.Fail:
		res.Status, res.Err = ChainFailed, policy.Permanent(fmt.Errorf("chain %s item %s: %w", r.Name, pl.ItemKey, err))
	default:
		res.Status, res.Err = ChainRetry, fmt.Errorf("chain %s item %s: %w", r.Name, pl.ItemKey, err)
	}
}

// DefaultPauseHold is how long a chain waits for its paused connection.
const DefaultPauseHold = 72 * time.Hour

// PauseRetry is how often a chain of a paused connection looks again.
const PauseRetry = time.Minute

// PausedError is the result of a chain whose connection or tenant is
// paused: asynq runs it again every PauseRetry without counting a failure
// (see IsFailure and RetryDelay), so once the connection is fixed or the
// tenant resumed the chain completes.
type PausedError struct {
	// Connection is the paused connection, or Tenant the tenant that is
	// not active (then Connection is empty).
	Connection, Tenant, Reason string
	err                        error // the step's failure, when a step met it
}

func (e *PausedError) Error() string {
	if e.Tenant != "" {
		return "tenant " + e.Tenant + " is not active: " + e.Reason
	}
	return "connection " + e.Connection + " is paused: " + e.Reason
}

func (e *PausedError) Unwrap() error { return e.err }

// WaitFor is how long the chain waits before it looks again (policy.Waiter).
func (e *PausedError) WaitFor() time.Duration { return PauseRetry }

// paused is the error of a chain of a paused connection: a PausedError
// while the chain is within its hold, then an archived failure.
func (c *Chainer) paused(pl ChainPayload, pe *PausedError) error {
	hold := c.PauseHold
	if hold <= 0 {
		hold = DefaultPauseHold
	}
	if !pl.Enqueued.IsZero() && time.Since(pl.Enqueued) > hold {
		return policy.Permanent(fmt.Errorf("chain %s item %s: %w; gave up after waiting %s", pl.Recipe, pl.ItemKey, pe, hold))
	}
	return fmt.Errorf("chain %s item %s: %w (waiting for it to be fixed)", pl.Recipe, pl.ItemKey, pe)
}

func (c *Chainer) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// RetryDelay is the asynq RetryDelayFunc of the engine: policy.Decide's
// wait for rate limits (the API's Retry-After) and paused connections,
// otherwise exponential backoff from 2 s with jitter, capped at 30 min.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	return policy.Decide(err).Delay(n)
}

// IsFailure tells asynq which errors count as failures: everything
// policy.Decide does not wait out (a rate limit, a paused connection).
func IsFailure(err error) bool {
	return policy.Decide(err).Counts()
}
