package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/triggers"
)

// MaxSample is the most items a trigger test returns.
const MaxSample = 10

// Sample runs sub's trigger once, reading one page of at most n items
// (at most MaxSample), newest first, and returns them without firing
// their chains or marking them seen: the test of a trigger.
func (p *Poller) Sample(ctx context.Context, sub *Subscription, n int) ([]triggers.Item, error) {
	if n <= 0 || n > MaxSample {
		n = MaxSample
	}
	params, err := sub.ParamsFor(ctx, p.Connections)
	if err != nil {
		return nil, fmt.Errorf("test %s: %w", sub.ID, err)
	}
	res, err := triggers.Poll(ctx, p.Caller, sub.Connection, sub.Op, params,
		triggers.Options{Dedup: sub.Dedup, MaxPages: 1, Limit: n})
	if err != nil {
		return nil, fmt.Errorf("test %s: %w", sub.ID, err)
	}
	items := res.Items
	out := make([]triggers.Item, 0, min(n, len(items)))
	for i := len(items) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, items[i])
	}
	return out, nil
}

// Replay enqueues the chain of one item of a subscription again, under a
// task id of its own (so it runs every step afresh, beside the original
// run's record) on the chain queue of prefix. It returns the new task id.
func Replay(ctx context.Context, q *asynq.Client, prefix string, pl ChainPayload) (string, error) {
	pl.Enqueued = time.Now()
	b, err := json.Marshal(pl)
	if err != nil {
		return "", fmt.Errorf("replay payload: %w", err)
	}
	id := fmt.Sprintf("%s:replay:%d", ChainTaskID(pl.Sub, pl.ItemKey), pl.Enqueued.UnixNano())
	_, err = q.EnqueueContext(ctx, asynq.NewTask(TypeChain, b), asynq.TaskID(id), asynq.Queue(QueueName(prefix, QueueChain)),
		asynq.Retention(DefaultChainRetention), asynq.MaxRetry(12))
	if err != nil {
		return "", fmt.Errorf("replay %s item %s: %w", pl.Sub, pl.ItemKey, err)
	}
	return id, nil
}
