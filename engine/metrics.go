package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the engine's Prometheus metrics.
type Metrics struct {
	Registry *prometheus.Registry
	// Chains counts chain runs by recipe and status.
	Chains *prometheus.CounterVec
	// ChainSeconds is the duration of chain runs by recipe.
	ChainSeconds *prometheus.HistogramVec
}

// NewMetrics registers the engine's metrics and the Go runtime's in a new
// registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Chains: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_chain_runs_total",
			Help: "Chain runs by recipe and status (completed, filtered, retry, failed, paused, removed)."}, []string{"recipe", "status"}),
		ChainSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ghlflow_chain_run_seconds",
			Help: "Duration of chain runs.", Buckets: prometheus.DefBuckets}, []string{"recipe"}),
	}
	m.Registry.MustRegister(m.Chains, m.ChainSeconds, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveChain records one chain run.
func (m *Metrics) ObserveChain(r ChainResult) {
	m.Chains.WithLabelValues(r.Recipe, r.Status).Inc()
	m.ChainSeconds.WithLabelValues(r.Recipe).Observe(r.Took.Seconds())
}
