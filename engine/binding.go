package engine

import (
	"context"
	"fmt"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/engine/auth"
)

// ConnectionLookup tells what a connection stands for (its app, location
// and company) for the .connection of templates; the connection store and
// the static file (auth.Source) implement it.
type ConnectionLookup interface {
	Resolve(ctx context.Context, id string) (*auth.Resolved, error)
}

// connectionData is what templates see as .connection: id, app,
// location_id and company_id. Without a lookup only id and app are known.
func connectionData(ctx context.Context, look ConnectionLookup, id, app string) (map[string]any, error) {
	out := map[string]any{"id": id, "app": app, "location_id": "", "company_id": ""}
	if look == nil {
		return out, nil
	}
	res, err := look.Resolve(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", id, err)
	}
	out["app"], out["location_id"], out["company_id"] = res.Conn.App, res.Conn.LocationID, res.Conn.CompanyID
	return out, nil
}

// binding is how the chain of subscription s resolves roles and template
// data.
func (s *Subscription) binding(look ConnectionLookup) actions.Binding {
	return actions.Binding{
		Tenant:     s.Tenant.Data(),
		Connection: s.Tenant.Connection,
		Describe: func(ctx context.Context, id, app string) (map[string]any, error) {
			if !s.Recipe.UsesConnection {
				return nil, nil
			}
			return connectionData(ctx, look, id, app)
		},
	}
}
