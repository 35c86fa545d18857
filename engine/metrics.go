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
	// PollSlots counts the scheduler's slots by result: enqueued, skipped
	// (the previous poll still in flight) or deferred (overdue after an
	// outage, moved to the next place in the interval).
	PollSlots *prometheus.CounterVec
	// Polls counts the poll tasks the workers ran.
	Polls prometheus.Counter
	// Stretched is the number of subscriptions whose polls are stretched
	// for their API budget.
	Stretched prometheus.Gauge
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
		PollSlots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_poll_slots_total",
			Help: "Scheduled poll slots by result (enqueued, skipped: previous poll still in flight, deferred: overdue after an outage)."},
			[]string{"result"}),
		Polls: prometheus.NewCounter(prometheus.CounterOpts{Name: "ghlflow_polls_total", Help: "Poll tasks run by the workers."}),
		Stretched: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghlflow_polls_stretched",
			Help: "Subscriptions whose polls are stretched for their API budget."}),
	}
	m.Registry.MustRegister(m.Chains, m.ChainSeconds, m.PollSlots, m.Polls, m.Stretched, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveChain records one chain run.
func (m *Metrics) ObserveChain(r ChainResult) {
	m.Chains.WithLabelValues(r.Recipe, r.Status).Inc()
	m.ChainSeconds.WithLabelValues(r.Recipe).Observe(r.Took.Seconds())
}
