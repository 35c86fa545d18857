package engine_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
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

// counter reads the counter name with labels from m's registry (0 when it
// has no such series).
func counter(t *testing.T, m *engine.Metrics, name string, labels map[string]string) float64 {
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
			return s.GetCounter().GetValue()
		}
	}
	return 0
}
