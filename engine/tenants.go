package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// Tenants returns the engine's tenant store.
func (e *Engine) Tenants() *tenant.Store { return e.tenants }

// bind makes the subscriptions of tenant t: one per recipe that applies to
// it. The recipes are shared, not copied.
func (e *Engine) bind(rs []*catalog.Recipe, t *tenant.Tenant) ([]*Subscription, error) {
	var out []*Subscription
	for _, r := range rs {
		if !t.Applies(e.cfg.Catalog, r) {
			if t.Selects(e.cfg.Catalog, r) {
				e.log.Info("recipe not run for tenant: it has no connection for a role", "tenant", t.ID,
					"recipe", r.Name, "missing", strings.Join(t.MissingRoles(r), ","))
			}
			continue
		}
		s, err := NewTenantSubscription(e.cfg.Catalog, r, t)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", r.File, r.Line, err)
		}
		if e.cfg.Every > 0 {
			s.Every = e.cfg.Every
		}
		out = append(out, s)
	}
	return out, nil
}

// scheduled returns the subscriptions that are polled: those of active
// tenants (a paused tenant keeps its state; its queued chains wait for it
// to resume, see Chainer.lookup).
func scheduled(subs []*Subscription) []*Subscription {
	out := make([]*Subscription, 0, len(subs))
	for _, s := range subs {
		if s.Tenant.Active() {
			out = append(out, s)
		}
	}
	return out
}

func subIDs(subs []*Subscription) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.ID
	}
	return out
}

// watchTenants applies tenant changes, and reloads the recipes when the
// stored ones change, every TenantRefresh until ctx ends.
func (e *Engine) watchTenants(ctx context.Context) {
	t := time.NewTicker(e.cfg.TenantRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if e.reloadStored(ctx) {
				continue // a stored recipe was put or removed
			}
			if _, err := e.RefreshTenants(ctx); err != nil {
				e.log.Warn("tenant refresh", "err", err)
			}
		}
	}
}

// RefreshTenants puts in force the tenants changed since the engine last
// looked: a changed tenant's subscriptions are rebound and rescheduled, a
// removed one's dropped. Its cost is one GET when nothing changed, and
// O(the changed tenants' subscriptions) otherwise. It returns how many
// tenants changed.
func (e *Engine) RefreshTenants(ctx context.Context) (int, error) {
	v, err := e.tenants.Version(ctx)
	if err != nil {
		return 0, err
	}
	e.tmu.Lock()
	defer e.tmu.Unlock()
	if v == e.tenantVersion {
		return 0, nil
	}
	present, ids, version, err := e.tenants.Changes(ctx, e.tenantVersion)
	if err != nil {
		return 0, err
	}
	removed := e.reg.tenantsOutside(ids)
	for _, t := range present {
		subs, err := e.bind(e.recipes, t)
		if err != nil {
			e.log.Error("tenant refused, its subscriptions stay as they were", "tenant", t.ID, "err", err)
			continue
		}
		if err := e.tenants.TrackSubs(ctx, t.ID, subIDs(subs)...); err != nil {
			return 0, err
		}
		if err := e.reschedule(ctx, e.reg.replaceTenant(t.ID, subs), scheduled(subs)); err != nil {
			return 0, err
		}
		e.log.Info("tenant in force", "tenant", t.ID, "status", t.Status, "subscriptions", len(subs))
	}
	for _, id := range removed {
		old := e.reg.replaceTenant(id, nil)
		if err := e.reschedule(ctx, old, nil); err != nil {
			return 0, err
		}
		if err := forgetSubs(ctx, e.Poller.Dedup, e.History, old); err != nil {
			return 0, err
		}
		e.log.Info("tenant removed", "tenant", id)
	}
	e.tenantVersion = version
	return len(present) + len(removed), nil
}

// reschedule unschedules old and schedules next (a subscription in both
// keeps its due time unless its interval changed).
func (e *Engine) reschedule(ctx context.Context, old, next []*Subscription) error {
	keep := make(map[string]time.Duration, len(next))
	for _, s := range next {
		keep[s.ID] = s.Every
	}
	for _, s := range old {
		if every, ok := keep[s.ID]; ok && every == s.Every {
			continue
		}
		if err := e.sched.Remove(ctx, e.entry(s)); err != nil {
			return err
		}
	}
	for _, s := range next {
		if err := e.sched.Add(ctx, e.entry(s)); err != nil {
			return err
		}
	}
	return nil
}
