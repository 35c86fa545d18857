package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine/policy"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// failures is the asynq ErrorHandler of the engine: it logs why a poll or
// a chain failed, once per task, when the failure is final (the error
// policy fails it or pauses its connection, or its retries are spent).
// The tries before are logged at debug level.
type failures struct {
	log     *slog.Logger
	reg     *Registry
	stats   *Stats
	metrics *Metrics
}

// HandleError implements asynq.ErrorHandler.
func (f failures) HandleError(ctx context.Context, t *asynq.Task, err error) {
	d := policy.Decide(err)
	if d.Counts() {
		f.stats.failed()
	}
	attrs := f.about(t, err)
	if id, ok := asynq.GetTaskID(ctx); ok {
		attrs = append(attrs, "run", id)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	final := d.Action == policy.Fail || d.Action == policy.Pause || (d.Counts() && retried >= maxRetry)
	attrs = append(attrs, "tries", retried+1, "err", err.Error())
	kind := "poll"
	if t.Type() == TypeChain {
		kind = "chain"
	}
	if !final {
		f.log.Debug(kind+" failed, will try again", append(attrs, "next", d.Action.String())...)
		return
	}
	if f.metrics != nil {
		f.metrics.Failures.WithLabelValues(kind, d.Action.String()).Inc()
	}
	f.log.Warn(kind+" failed", append(attrs, "action", d.Action.String())...)
}

// about names the tenant, recipe, subscription, connection (and item) a
// task is for.
func (f failures) about(t *asynq.Task, err error) []any {
	var attrs []any
	var sub, recipe, conn, tenantID string
	switch t.Type() {
	case TypePoll:
		var pl PollPayload
		if json.Unmarshal(t.Payload(), &pl) == nil {
			sub = pl.Sub
			// A subscription's polls share one task id; the slot tells
			// them apart.
			attrs = append(attrs, "slot", pl.Slot)
		}
	case TypeChain:
		var pl ChainPayload
		if json.Unmarshal(t.Payload(), &pl) == nil {
			sub, recipe = pl.Sub, pl.Recipe
			attrs = append(attrs, "item", pl.ItemKey)
		}
	}
	if s, ok := f.reg.Get(sub); ok {
		recipe, conn = s.Recipe.Name, s.Connection
		if s.Tenant != nil {
			tenantID = s.Tenant.ID
		}
	}
	var te *transport.Error
	if errors.As(err, &te) && te.Connection != "" {
		conn = te.Connection
	}
	return append([]any{"tenant", tenantID, "recipe", recipe, "sub", sub, "connection", conn}, attrs...)
}
