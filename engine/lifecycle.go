package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/webhook"
)

// Event types of the app's install lifecycle (docs/webhook events/AppInstall.md
// and AppUninstall.md).
const (
	EventInstall   = "INSTALL"
	EventUninstall = "UNINSTALL"
)

// Lifecycle applies HighLevel's install and uninstall events to the
// tenants. An install of a location makes or updates its tenant (id = the
// location id) with the location's connection: one an OAuth install
// already stored, or one exchanged through oauth/locationToken from the
// company's agency connection. An uninstall marks the location's tenant
// uninstalled, so every engine stops its polls within TenantRefresh, and
// deletes the credentials of its connections; an agency's uninstall does
// so for every tenant of the company and deletes the agency connection.
type Lifecycle struct {
	Tenants *tenant.Store
	Conns   *auth.Store
	Logger  *slog.Logger
}

// Apply handles an INSTALL or UNINSTALL event; handled is false for other
// types. An error means the event should be tried again.
func (l *Lifecycle) Apply(ctx context.Context, ev webhook.Event) (handled bool, err error) {
	company := gjson.GetBytes(ev.Body, "companyId").String()
	switch ev.Type {
	case EventInstall:
		return true, l.installed(ctx, ev.Location, company)
	case EventUninstall:
		return true, l.uninstalled(ctx, ev.Location, company)
	}
	return false, nil
}

func (l *Lifecycle) installed(ctx context.Context, loc, company string) error {
	if loc == "" {
		return nil // an agency install: its connection comes from the OAuth install
	}
	conns, err := l.Conns.List(ctx)
	if err != nil {
		return err
	}
	var conn *auth.Connection
	for i, c := range conns {
		if c.App == "ghl" && c.LocationID == loc {
			conn = &conns[i]
			break
		}
	}
	if conn == nil {
		agency := slices.IndexFunc(conns, func(c auth.Connection) bool {
			return c.App == "ghl" && c.LocationID == "" && c.CompanyID == company && company != ""
		})
		if agency < 0 {
			l.logger().Info("install of a location without a connection yet; its OAuth install makes the tenant", "location", loc)
			return nil
		}
		c, err := l.Conns.ExchangeLocation(ctx, conns[agency].ID, loc, conns[agency].ID+"-"+loc)
		if err != nil {
			return fmt.Errorf("install of %s: %w", loc, err)
		}
		conn = &c
	}
	t, err := l.Tenants.Installed(ctx, conn.App, conn.ID, loc, company)
	if err != nil {
		return fmt.Errorf("install of %s: %w", loc, err)
	}
	l.logger().Info("tenant installed", "tenant", t.ID, "connection", conn.ID)
	return nil
}

func (l *Lifecycle) uninstalled(ctx context.Context, loc, company string) error {
	ids := []string{loc}
	if loc == "" {
		ts, _, err := l.Tenants.List(ctx)
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, t := range ts {
			if company != "" && t.Labels["company"] == company {
				ids = append(ids, t.ID)
			}
		}
	}
	for _, id := range ids {
		t, err := l.Tenants.Update(ctx, id, func(t *tenant.Tenant) error {
			t.Status = tenant.StatusUninstalled
			return nil
		})
		if errors.Is(err, tenant.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("uninstall of %s: %w", id, err)
		}
		for _, conn := range t.Connections {
			if err := l.deleteConn(ctx, conn); err != nil {
				return err
			}
		}
		l.logger().Info("tenant uninstalled", "tenant", id)
	}
	if loc != "" {
		return nil
	}
	// The agency's own connections go too.
	conns, err := l.Conns.List(ctx)
	if err != nil {
		return err
	}
	for _, c := range conns {
		if c.App == "ghl" && c.LocationID == "" && company != "" && c.CompanyID == company {
			if err := l.deleteConn(ctx, c.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteConn deletes a stored connection; one that is not in the store (a
// static one) stays.
func (l *Lifecycle) deleteConn(ctx context.Context, id string) error {
	if _, err := l.Conns.Get(ctx, id); errors.Is(err, auth.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if err := l.Conns.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete connection %s: %w", id, err)
	}
	l.logger().Info("connection deleted on uninstall", "connection", id)
	return nil
}

func (l *Lifecycle) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}
