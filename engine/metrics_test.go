package engine_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// TestMetricsOfAPICalls: the transport reports each attempt to the
// engine's metrics; 429s the API sent are counted by app, beside the calls
// by operation and status.
func TestMetricsOfAPICalls(t *testing.T) {
	overlapInShort(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{Interval: time.Second})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tok := srv.IssueToken(sim.TokenSpec{LocationID: "loc-m", Private: true})
	conns, err := auth.NewStatic(auth.StaticEntry{ID: "acme", App: "ghl", LocationID: "loc-m", Token: tok.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	m := engine.NewMetrics()
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ts.URL, Observer: m})
	srv.SetFaults(sim.Faults{Burst429: 2})
	if _, err := tr.Call(context.Background(), "acme", cat.MustOp("ghl.contacts.list"), map[string]any{"locationId": "loc-m"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		status string
		want   float64
	}{{"429", 2}, {"200", 1}} {
		if got := counter(t, m, "ghlflow_api_calls_total", map[string]string{"app": "ghl", "op": "ghl.contacts.list", "status": c.status}); got != c.want {
			t.Errorf("calls with status %s: %v, want %v", c.status, got, c.want)
		}
	}
	if got := counter(t, m, "ghlflow_api_rate_limited_total", map[string]string{"app": "ghl"}); got != 2 {
		t.Errorf("429s counted: %v, want 2", got)
	}
}

// TestMetricsTenantsByStatus: ghlflow_tenants counts the tenants by
// status, and a scrape after a pause or a removal shows it (the count is
// kept between scrapes while the tenants' version does not move).
func TestMetricsTenantsByStatus(t *testing.T) {
	overlapInShort(t)
	ctx := context.Background()
	rdb, prefix := testRedis(t)
	f := newTenantFixture(t, "A", "B")
	st := tenant.NewStore(rdb, prefix)
	f.put(t, st, "A", "pro")
	f.put(t, st, "B", "pro")
	cat := testCatalog(t)
	m := engine.NewMetrics()
	if _, err := engine.New(engine.Config{Catalog: cat, Redis: rdb, Recipes: []string{f.dir}, Prefix: prefix,
		Caller: transport.New(transport.Config{Catalog: cat, Connections: f.conns, BaseURL: f.url}), Connections: f.conns,
		Metrics: m}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, active, paused float64) {
		t.Helper()
		for status, want := range map[string]float64{tenant.StatusActive: active, tenant.StatusPaused: paused} {
			if got := gauge(t, m, "ghlflow_tenants", map[string]string{"status": status}); got != want {
				t.Errorf("%s: %s tenants %v, want %v", when, status, got, want)
			}
		}
	}
	check("two tenants", 2, 0)
	check("scraped again", 2, 0)
	if _, err := st.Update(ctx, "B", func(tn *tenant.Tenant) error { tn.Status = tenant.StatusPaused; return nil }); err != nil {
		t.Fatal(err)
	}
	check("B paused", 1, 1)
	if err := st.Delete(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	check("A removed", 0, 1)
}

// gauge reads the gauge name with labels from m's registry (-1 when it
// has no such series).
func gauge(t *testing.T, m *engine.Metrics, name string, labels map[string]string) float64 {
	if s := series(t, m, name, labels); s != nil {
		return s.GetGauge().GetValue()
	}
	return -1
}

// counter reads the counter name with labels from m's registry (0 when it
// has no such series).
func counter(t *testing.T, m *engine.Metrics, name string, labels map[string]string) float64 {
	return series(t, m, name, labels).GetCounter().GetValue()
}

// series finds the series name with labels in m's registry (nil when it
// has none).
func series(t *testing.T, m *engine.Metrics, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return s
		}
	}
	return nil
}
