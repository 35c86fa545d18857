package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// Roles are the parts of the engine a process runs. Any number of
// processes may run each role against one Redis: schedulers share the
// schedule through their claims, workers share the queues.
type Roles uint8

const (
	// RoleScheduler enqueues the polls that are due, plans the stretches
	// for the API budgets and watches for saturation.
	RoleScheduler Roles = 1 << iota
	// RoleWorker runs the poll and chain tasks and routes the webhook
	// events received.
	RoleWorker
	// AllRoles is the scheduler and the workers in one process.
	AllRoles = RoleScheduler | RoleWorker
)

// String names the roles, "scheduler+worker" for both.
func (r Roles) String() string {
	var names []string
	if r&RoleScheduler != 0 {
		names = append(names, "scheduler")
	}
	if r&RoleWorker != 0 {
		names = append(names, "worker")
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// Run runs the scheduler and the workers until ctx ends, reloading the
// recipes on file changes and SIGHUP, then shuts down gracefully.
func (e *Engine) Run(ctx context.Context) error { return e.RunRoles(ctx, AllRoles) }

// RunRoles runs the given roles until ctx ends. Every role keeps the
// recipes and the tenants in force (file changes, SIGHUP, stored recipes
// and tenants): workers need them to run polls and chains, schedulers to
// know what is due, and a process with no role (an HTTP front) to answer
// about them.
func (e *Engine) RunRoles(ctx context.Context, roles Roles) error {
	e.roles = roles
	defer e.client.Close()
	if roles&RoleWorker != 0 {
		srv, err := e.startWorkers()
		if err != nil {
			return err
		}
		defer srv.Shutdown()
	}
	var wg sync.WaitGroup
	if roles&RoleScheduler != 0 {
		e.plan(ctx) // the first ticks already keep to the budgets
		wg.Go(func() {
			if err := e.sched.Run(ctx); err != nil {
				e.log.Error("scheduler", "err", err)
			}
		})
		wg.Go(func() { e.watchLoad(ctx) })
	}
	if roles&RoleWorker != 0 && e.Router != nil {
		// Workers share the webhook events through a consumer group.
		wg.Go(func() {
			if err := e.Router.Run(ctx); err != nil {
				e.log.Error("webhook router", "err", err)
			}
		})
	}
	wg.Go(func() { e.watch(ctx) })
	wg.Go(func() { e.watchTenants(ctx) })
	wg.Go(func() { e.summarize(ctx, e.cfg.SummaryEvery) })
	e.ready.Store(true)
	e.log.Info("engine started", "roles", roles.String())
	wg.Wait()
	e.ready.Store(false)
	e.log.Info("shutting down", "roles", roles.String())
	return nil
}

// startWorkers starts the asynq server of the poll and chain queues.
func (e *Engine) startWorkers() (*asynq.Server, error) {
	queues := make(map[string]int, len(e.cfg.Priorities))
	for base, weight := range e.cfg.Priorities {
		queues[QueueName(e.cfg.Prefix, base)] = weight
	}
	srv := asynq.NewServerFromRedisClient(e.cfg.Redis, asynq.Config{
		Concurrency:     e.cfg.PollConcurrency + e.cfg.ChainConcurrency,
		Queues:          queues,
		RetryDelayFunc:  RetryDelay,
		IsFailure:       IsFailure,
		ErrorHandler:    failures{log: e.log, reg: e.reg, stats: e.stats, metrics: e.cfg.Metrics},
		ShutdownTimeout: e.cfg.ShutdownTimeout,
		// A poll enqueued while the queues were empty waits at most this
		// long for a worker (asynq's default is a second).
		TaskCheckInterval: 200 * time.Millisecond,
		Logger:            slogAdapter{e.log},
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypePoll, e.countPolls(e.Poller))
	mux.Handle(TypeChain, e.Chainer)
	if err := srv.Start(mux); err != nil {
		return nil, fmt.Errorf("start workers: %w", err)
	}
	return srv, nil
}
