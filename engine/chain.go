package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// Chain statuses in the run history and the log.
const (
	ChainCompleted = "completed"
	ChainFiltered  = "filtered"
	ChainRetry     = "retry"
	ChainFailed    = "failed"
	ChainPaused    = "paused"
	ChainRemoved   = "removed"
)

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
	Logger  *slog.Logger
}

func (c *Chainer) ckptKey(sub, taskID string) string {
	return rdb.NewKeys(c.Prefix).Checkpoint(sub, taskID)
}

// ProcessTask handles a TypeChain task (asynq.Handler).
func (c *Chainer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl ChainPayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return fmt.Errorf("chain payload: %v: %w", err, asynq.SkipRetry)
	}
	taskID, _ := asynq.GetTaskID(ctx)
	if taskID == "" {
		taskID = ChainTaskID(pl.Sub, pl.ItemKey)
	}
	if n, _ := asynq.GetRetryCount(ctx); n == 0 && c.OnStart != nil {
		c.OnStart(pl)
	}
	res := c.Run(ctx, pl, taskID)
	if c.OnDone != nil {
		c.OnDone(res)
	}
	return res.Err
}

// Run runs the chain of one item; the result's Err is what the asynq
// handler returns (wrapping asynq.SkipRetry when a retry cannot help).
func (c *Chainer) Run(ctx context.Context, pl ChainPayload, taskID string) (res ChainResult) {
	start := time.Now()
	res = ChainResult{Sub: pl.Sub, Recipe: pl.Recipe, ItemKey: pl.ItemKey, TaskID: taskID}
	hist := history.Chain{Time: start, Recipe: pl.Recipe, ItemKey: pl.ItemKey, TaskID: taskID}
	defer func() {
		res.Took = time.Since(start)
		if c.History != nil {
			hist.Took, hist.Status = res.Took, res.Status
			if res.Err != nil {
				hist.Error = res.Err.Error()
			}
			if err := c.History.AddChain(context.WithoutCancel(ctx), pl.Sub, hist); err != nil {
				c.logger().Warn("chain history", "sub", pl.Sub, "err", err)
			}
		}
	}()
	sub, ok := c.Subs.Get(pl.Sub)
	if ok && c.Pauser != nil {
		// A chain of a paused connection waits for the fix.
		if reason, paused := c.Pauser.PausedReason(sub.Connection); paused {
			res.Status = ChainPaused
			res.Err = c.paused(pl, &PausedError{Connection: sub.Connection, Reason: reason})
			return res
		}
	}
	if !ok {
		res.Status = ChainRemoved
		c.logger().Info("chain of a removed subscription", "sub", pl.Sub, "recipe", pl.Recipe, "item", pl.ItemKey)
		return res
	}
	r := sub.Recipe
	var item any
	if err := json.Unmarshal(pl.Item, &item); err != nil {
		res.Status, res.Err = ChainFailed, fmt.Errorf("chain %s item %s: %v: %w", r.Name, pl.ItemKey, err, asynq.SkipRetry)
		return res
	}
	pass, err := actions.Filter(r, item)
	if err != nil {
		res.Status, res.Err = ChainFailed, fmt.Errorf("chain %s item %s: %v: %w", r.Name, pl.ItemKey, err, asynq.SkipRetry)
		return res
	}
	if !pass {
		res.Status = ChainFiltered
		return res
	}
	key := c.ckptKey(pl.Sub, taskID)
	saved, err := c.Redis.HGetAll(ctx, key).Result()
	if err != nil {
		res.Status, res.Err = ChainRetry, fmt.Errorf("chain %s item %s: checkpoints: %w", r.Name, pl.ItemKey, err)
		return res
	}
	retention := c.Retention
	if retention <= 0 {
		retention = DefaultChainRetention
	}
	outs := make([]any, 0, len(r.Steps))
	for i := range r.Steps {
		op := r.Steps[i].Op
		if raw, ok := saved[strconv.Itoa(i)]; ok {
			var out any
			if err := json.Unmarshal([]byte(raw), &out); err == nil {
				outs = append(outs, out)
				res.Steps++
				res.Resumed++
				hist.Steps = append(hist.Steps, history.Step{Op: op, Status: "resumed"})
				continue
			}
		}
		out, err := c.Runner.RunStep(ctx, r, i, item, outs)
		if err != nil {
			hist.Steps = append(hist.Steps, history.Step{Op: op, Status: "failed", Error: err.Error()})
			res.Status, res.Err = c.classify(ctx, sub, err)
			if pe, ok := res.Err.(*PausedError); ok {
				res.Err = c.paused(pl, pe)
				return res
			}
			res.Err = fmt.Errorf("chain %s item %s: %w", r.Name, pl.ItemKey, res.Err)
			return res
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
			c.logger().Warn("chain checkpoint", "sub", pl.Sub, "step", i, "err", err)
		}
		outs = append(outs, out)
		res.Steps++
		hist.Steps = append(hist.Steps, history.Step{Op: op, Status: "done"})
	}
	res.Status = ChainCompleted
	return res
}

// classify turns a step failure into a status and the error for asynq.
func (c *Chainer) classify(ctx context.Context, sub *Subscription, err error) (string, error) {
	switch {
	case transport.Retryable(err):
		return ChainRetry, err
	case authFailure(err):
		conn := sub.Connection
		var se *actions.StepError
		if errors.As(err, &se) {
			r := sub.Recipe
			conn = actions.Connection(r, &r.Steps[se.Step])
		}
		if c.Pauser != nil {
			if perr := c.Pauser.PauseConnection(ctx, conn, err.Error()); perr != nil {
				c.logger().Error("pause connection", "connection", conn, "err", perr)
			}
		}
		return ChainPaused, &PausedError{Connection: conn, Reason: err.Error(), err: err}
	case ctx.Err() != nil:
		return ChainRetry, err
	default:
		var re *actions.RenderError
		if errors.As(err, &re) || permanent(err) || !errors.Is(err, transport.ErrTransient) {
			return ChainFailed, fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return ChainRetry, err
	}
}

// DefaultPauseHold is how long a chain waits for its paused connection.
const DefaultPauseHold = 72 * time.Hour

// PauseRetry is how often a chain of a paused connection looks again.
const PauseRetry = time.Minute

// PausedError is the result of a chain whose connection is paused: asynq
// runs it again every PauseRetry without counting a failure (see IsFailure
// and RetryDelay), so once the connection is fixed the chain completes.
type PausedError struct {
	Connection, Reason string
	err                error // the step's failure, when a step met it
}

func (e *PausedError) Error() string {
	return "connection " + e.Connection + " is paused: " + e.Reason
}

func (e *PausedError) Unwrap() error { return e.err }

// paused is the error of a chain of a paused connection: a PausedError
// while the chain is within its hold, then an archived failure.
func (c *Chainer) paused(pl ChainPayload, pe *PausedError) error {
	hold := c.PauseHold
	if hold <= 0 {
		hold = DefaultPauseHold
	}
	if !pl.Enqueued.IsZero() && time.Since(pl.Enqueued) > hold {
		return fmt.Errorf("chain %s item %s: %w; gave up after waiting %s: %w", pl.Recipe, pl.ItemKey, pe, hold, asynq.SkipRetry)
	}
	return fmt.Errorf("chain %s item %s: %w (waiting for it to be fixed)", pl.Recipe, pl.ItemKey, pe)
}

func (c *Chainer) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// RetryDelay is the asynq RetryDelayFunc of the engine: the API's
// Retry-After for rate limits, otherwise exponential backoff from 2 s with
// full jitter, capped at 30 min.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var pe *PausedError
	if errors.As(err, &pe) {
		return PauseRetry + time.Duration(rand.Int64N(int64(PauseRetry/4)))
	}
	if d := transport.RetryAfter(err); d > 0 {
		return d + time.Duration(rand.Int64N(int64(time.Second)))
	}
	d := 2 * time.Second << min(n, 20)
	if d > 30*time.Minute || d <= 0 {
		d = 30 * time.Minute
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// IsFailure tells asynq which errors count as failures: a rate limit and
// a paused connection are waited out without spending a retry.
func IsFailure(err error) bool {
	if errors.Is(err, asynq.SkipRetry) {
		return true
	}
	var rl *transport.RateLimitedError
	var pe *PausedError
	return !errors.As(err, &rl) && !errors.As(err, &pe)
}
