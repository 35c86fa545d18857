package engine

import (
	"context"
	"log/slog"

	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// InstallTenants is the install hook that makes a tenant of every location
// an OAuth install connects (tenant id = location id, the app's role
// filled in); an agency install with many locations makes one tenant per
// location, the agency connection none. Every engine puts the tenants in
// force within its TenantRefresh.
func InstallTenants(ts *tenant.Store) auth.InstallHook {
	return func(ctx context.Context, conns []auth.Connection) error {
		for _, c := range conns {
			if c.LocationID == "" {
				continue
			}
			t, err := ts.Installed(ctx, c.App, c.ID, c.LocationID, c.CompanyID)
			if err != nil {
				return err
			}
			slog.Info("tenant installed", "tenant", t.ID, "role", c.App, "connection", c.ID)
		}
		return nil
	}
}
