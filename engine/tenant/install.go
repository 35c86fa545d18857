package tenant

import (
	"context"
	"errors"
)

// Installed creates or updates the tenant of a location that installed the
// app: its id is the location id, role app is filled with the connection,
// its company is a label, and a tenant that had uninstalled is active again.
func (s *Store) Installed(ctx context.Context, app, connection, locationID, companyID string) (*Tenant, error) {
	t, err := s.Get(ctx, locationID)
	if errors.Is(err, ErrNotFound) {
		t, err = &Tenant{ID: locationID, Name: locationID}, nil
	}
	if err != nil {
		return nil, err
	}
	if t.Connections == nil {
		t.Connections = map[string]string{}
	}
	t.Connections[app] = connection
	if companyID != "" {
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		t.Labels["company"] = companyID
	}
	if t.Status == StatusUninstalled {
		t.Status = StatusActive
	}
	return t, s.Put(ctx, t)
}
