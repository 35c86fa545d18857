package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/echo"
	"github.com/ghlflow/ghlflow/engine/history"
	rdbkeys "github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/scheduler"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// PurgeReport says what removing a tenant deleted.
type PurgeReport struct {
	Subscriptions, Keys, Tasks, Connections int
}

// RemoveTenant removes tenant id under prefix and deletes all of its state:
// the tenant record (every engine drops its subscriptions within its
// TenantRefresh), its schedule, cursors, backlogs, checkpoints, history
// (its runs in the recent-runs indexes too),
// queued tasks, the pauses and the stored connections (sealed
// credentials) and rate-limit counters of connections no other tenant
// uses. It works without the recipes: the tenant's subscription ids are
// recorded as the engine binds them.
func RemoveTenant(ctx context.Context, rdb redis.UniversalClient, prefix, id string) (PurgeReport, error) {
	var rep PurgeReport
	store := tenant.NewStore(rdb, prefix)
	t, err := store.Get(ctx, id)
	if err != nil && !errors.Is(err, tenant.ErrNotFound) {
		return rep, err
	}
	subs, err := store.Subs(ctx, id)
	if err != nil {
		return rep, err
	}
	rep.Subscriptions = len(subs)
	if err := store.Delete(ctx, id); err != nil {
		return rep, err
	}
	if err := scheduler.New(rdb, nil, scheduler.Options{Prefix: prefix}).RemoveIDs(ctx, subs); err != nil {
		return rep, err
	}
	if rep.Keys, err = deleteSubState(ctx, rdb, prefix, subs); err != nil {
		return rep, err
	}
	if err := NewSubPauses(rdb, prefix).Forget(ctx, subs...); err != nil {
		return rep, err
	}
	if rep.Tasks, err = deleteSubTasks(ctx, rdb, prefix, subs); err != nil {
		return rep, err
	}
	if t != nil {
		if rep.Connections, err = deleteTenantConnections(ctx, rdb, prefix, store, t); err != nil {
			return rep, err
		}
	}
	if err := rdb.Del(ctx, rdbkeys.NewKeys(prefix).TenantPace(id)).Err(); err != nil {
		return rep, fmt.Errorf("remove tenant %s: %w", id, err)
	}
	if err := history.New(rdb, history.Options{Prefix: prefix}).ForgetTenant(ctx, id); err != nil {
		return rep, err
	}
	if _, err := apikey.New(rdb, prefix, "").RevokeTenant(ctx, id); err != nil {
		return rep, err
	}
	if err := store.Forget(ctx, id); err != nil {
		return rep, err
	}
	return rep, nil
}

// deleteSubState deletes every key of the subscriptions (dedup state,
// history, chain checkpoints: all under their {sub:ID} tag) in one scan.
func deleteSubState(ctx context.Context, rdb redis.UniversalClient, prefix string, subs []string) (int, error) {
	if len(subs) == 0 {
		return 0, nil
	}
	drop := make(map[string]bool, len(subs))
	for _, s := range subs {
		drop[s] = true
	}
	keys := rdbkeys.NewKeys(prefix)
	n := 0
	iter := rdb.Scan(ctx, 0, keys.SubPattern(), 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		sub, ok := keys.SubOf(k)
		if !ok || !drop[sub] {
			continue
		}
		if err := rdb.Del(ctx, k).Err(); err != nil {
			return n, fmt.Errorf("delete %s: %w", k, err)
		}
		n++
	}
	if err := iter.Err(); err != nil {
		return n, fmt.Errorf("scan subscription state: %w", err)
	}
	return n, nil
}

// deleteSubTasks deletes the queued, retried, archived and completed poll
// and chain tasks of the subscriptions (a running task finishes and finds
// its subscription gone).
func deleteSubTasks(ctx context.Context, rdb redis.UniversalClient, prefix string, subs []string) (int, error) {
	drop := make(map[string]bool, len(subs))
	for _, s := range subs {
		drop[s] = true
	}
	ins := asynq.NewInspectorFromRedisClient(rdb)
	n := 0
	for _, q := range []string{QueueName(prefix, QueuePoll), QueueName(prefix, QueueChain)} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			ins.ListPendingTasks, ins.ListScheduledTasks, ins.ListRetryTasks, ins.ListArchivedTasks, ins.ListCompletedTasks} {
			for page := 1; ; page++ {
				tasks, err := list(q, asynq.Page(page), asynq.PageSize(1000))
				if err != nil {
					if errors.Is(err, asynq.ErrQueueNotFound) {
						break
					}
					return n, fmt.Errorf("tasks of %s: %w", q, err)
				}
				for _, ti := range tasks {
					var pl struct{ Sub string }
					if json.Unmarshal(ti.Payload, &pl) == nil && drop[pl.Sub] {
						if err := ins.DeleteTask(q, ti.ID); err == nil {
							n++
						}
					}
				}
				if len(tasks) < 1000 {
					break
				}
			}
		}
	}
	return n, nil
}

// deleteTenantConnections lifts the pauses of the tenant's connections and
// deletes those no other tenant uses: the stored connection with its
// sealed credential, its location's rate-limit counters and its write
// fingerprints.
func deleteTenantConnections(ctx context.Context, rdb redis.UniversalClient, prefix string, store *tenant.Store, t *tenant.Tenant) (int, error) {
	others, _, err := store.List(ctx)
	if err != nil {
		return 0, err
	}
	shared := map[string]bool{}
	for _, o := range others {
		for _, c := range o.Connections {
			shared[c] = true
		}
	}
	n := 0
	for _, conn := range t.Connections {
		if shared[conn] {
			continue
		}
		if err := connstate.New(rdb, prefix).Lift(ctx, conn); err != nil {
			return n, fmt.Errorf("pause of %s: %w", conn, err)
		}
		if err := echo.Forget(ctx, rdb, prefix, conn); err != nil {
			return n, err
		}
		c, err := auth.GetConnection(ctx, rdb, prefix, conn)
		if err != nil {
			continue // a static connection, or none: nothing stored
		}
		for _, res := range []string{c.LocationID, c.CompanyID, "conn:" + c.ID} {
			if res != "" {
				if err := ratelimit.Forget(ctx, rdb, prefix, c.App, res); err != nil {
					return n, err
				}
			}
		}
		if err := auth.DeleteConnection(ctx, rdb, prefix, conn); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// forgetSubs deletes the known keys of subscriptions a running engine
// dropped (a second pass after RemoveTenant, for a poll that was running
// while it purged).
func forgetSubs(ctx context.Context, d *dedup.Store, h *history.Store, subs []*Subscription) error {
	for _, s := range subs {
		if err := d.Reset(ctx, s.ID); err != nil {
			return err
		}
		if err := h.Delete(ctx, s.ID); err != nil {
			return err
		}
	}
	return nil
}
