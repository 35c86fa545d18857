package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/scheduler"
)

// orphanAfter is how long a running poll's lease may go without being
// extended before the poll counts as abandoned by a killed worker: a live
// worker extends it every 5 s to 30 s ahead, so at least three beats were
// missed.
const orphanAfter = 15 * time.Second

// PollEnqueuer enqueues poll tasks for the scheduler with one TaskID per
// subscription, so the queue holds at most one poll of a subscription: while
// it is pending, running or waiting for a retry, the next slot meets the
// TaskID and is skipped (scheduler.ErrInFlight). A failed poll left
// archived, or a running one whose worker was killed, gives its TaskID back
// to the next slot.
type PollEnqueuer struct {
	Queue ChainEnqueuer
	// Inspector tells an archived poll from one in flight (without it any
	// existing task counts as in flight).
	Inspector *asynq.Inspector
	// Redis, when set, lets a poll whose worker was killed be replaced
	// once its lease lapses, instead of holding the subscription until
	// asynq's recoverer takes it back (a minute or more).
	Redis redis.UniversalClient
	// PollQueue is the asynq queue (default QueuePoll).
	PollQueue string
	// Options are added to every poll task after the defaults
	// (MaxRetry 3, Timeout 5 min: the next slot polls again anyway).
	Options []asynq.Option
}

// EnqueuePoll implements scheduler.Enqueuer.
func (e *PollEnqueuer) EnqueuePoll(ctx context.Context, sub string, slot int64, due time.Time) error {
	pl := PollPayload{Sub: sub, Slot: slot}
	if !due.IsZero() {
		pl.Due = due.UnixMilli()
	}
	payload, err := json.Marshal(pl)
	if err != nil {
		return err
	}
	q := e.PollQueue
	if q == "" {
		q = QueuePoll
	}
	id := PollTaskID(sub)
	opts := append([]asynq.Option{asynq.TaskID(id), asynq.Queue(q), asynq.MaxRetry(3), asynq.Timeout(5 * time.Minute)}, e.Options...)
	for range 2 {
		_, err = e.Queue.EnqueueContext(ctx, asynq.NewTask(TypePoll, payload), opts...)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			break
		}
		freed, ferr := e.free(ctx, q, id)
		if ferr != nil {
			return fmt.Errorf("enqueue poll %s slot %d: %w", sub, slot, ferr)
		}
		if !freed {
			return fmt.Errorf("poll %s slot %d: %w", sub, slot, scheduler.ErrInFlight)
		}
	}
	if err != nil {
		return fmt.Errorf("enqueue poll %s slot %d: %w", sub, slot, err)
	}
	return nil
}

// free gives back the TaskID id when its task is no longer in flight:
// archived, completed, gone, or running in a worker that stopped extending
// its lease. It reports whether the id is free.
func (e *PollEnqueuer) free(ctx context.Context, queue, id string) (bool, error) {
	if e.Inspector == nil {
		return false, nil
	}
	info, err := e.Inspector.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
		return true, nil
	case err != nil:
		return false, err
	case info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted:
		if err := e.Inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return false, fmt.Errorf("drop the finished poll: %w", err)
		}
		return true, nil
	case info.State == asynq.TaskStateActive && e.Redis != nil:
		cutoff := time.Now().Add(30*time.Second - orphanAfter).Unix()
		n, err := rdb.AsynqDropOrphan.Run(ctx, e.Redis, []string{rdb.AsynqTask(queue, id), rdb.AsynqActive(queue),
			rdb.AsynqLease(queue)}, id, cutoff).Int()
		if err != nil {
			return false, fmt.Errorf("drop an abandoned poll: %w", err)
		}
		return n == 1, nil
	}
	return false, nil
}
