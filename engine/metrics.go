package engine

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// Metrics are the engine's Prometheus metrics. No series carries a tenant,
// a subscription or a connection: their number grows with the customers.
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
	// PollResults counts polls by result: ok, error or skipped (paused
	// connection, tenant cap, stretch).
	PollResults *prometheus.CounterVec
	// PollLag is how late polls start after their due time.
	PollLag prometheus.Histogram
	// ItemsRead and ItemsNew count the items the polls read and found new.
	ItemsRead, ItemsNew prometheus.Counter
	// StepSeconds is the duration of chain steps by operation.
	StepSeconds *prometheus.HistogramVec
	// Failures counts final failures of polls and chains by kind and the
	// error policy's action.
	Failures *prometheus.CounterVec
	// APICalls counts the API calls by app, operation and status code (0:
	// no response); APISeconds is their duration by app.
	APICalls   *prometheus.CounterVec
	APISeconds *prometheus.HistogramVec
	// RateLimited counts the 429 answers by app.
	RateLimited *prometheus.CounterVec
	// LimiterWaits is how long calls waited for the shared rate limiter.
	LimiterWaits *prometheus.HistogramVec
	// TokenRefreshes counts OAuth token refreshes by result (ok, error).
	TokenRefreshes *prometheus.CounterVec
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
		PollResults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_poll_results_total",
			Help: "Polls by result (ok, error, skipped)."}, []string{"result"}),
		PollLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ghlflow_poll_lag_seconds",
			Help: "How long after its due time a poll started.", Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}),
		ItemsRead: prometheus.NewCounter(prometheus.CounterOpts{Name: "ghlflow_items_read_total", Help: "Items the polls read."}),
		ItemsNew:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ghlflow_items_new_total", Help: "Items the polls found new."}),
		StepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ghlflow_step_seconds",
			Help: "Duration of chain steps by operation.", Buckets: prometheus.DefBuckets}, []string{"op"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_failures_total",
			Help: "Final failures of polls and chains by kind and the policy's action."}, []string{"kind", "action"}),
		APICalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_api_calls_total",
			Help: "API calls by app, operation and status code (0: no response)."}, []string{"app", "op", "status"}),
		APISeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ghlflow_api_call_seconds",
			Help: "Duration of API calls by app.", Buckets: prometheus.DefBuckets}, []string{"app"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_api_rate_limited_total",
			Help: "429 answers by app."}, []string{"app"}),
		LimiterWaits: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ghlflow_rate_limiter_wait_seconds",
			Help: "How long calls waited for the shared rate limiter, by app.", Buckets: []float64{0, .01, .05, .1, .5, 1, 5, 30}}, []string{"app"}),
		TokenRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_token_refreshes_total",
			Help: "OAuth token refreshes by result (ok, error)."}, []string{"result"}),
		Stretched: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghlflow_polls_stretched",
			Help: "Subscriptions whose polls are stretched for their API budget."}),
	}
	m.Registry.MustRegister(m.Chains, m.ChainSeconds, m.PollSlots, m.Polls, m.PollResults, m.PollLag, m.ItemsRead, m.ItemsNew,
		m.StepSeconds, m.Failures, m.APICalls, m.APISeconds, m.RateLimited, m.LimiterWaits, m.TokenRefreshes, m.Stretched,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveChain records one chain run.
func (m *Metrics) ObserveChain(r ChainResult) {
	m.Chains.WithLabelValues(r.Recipe, r.Status).Inc()
	m.ChainSeconds.WithLabelValues(r.Recipe).Observe(r.Took.Seconds())
}

// ObserveCall records one API call (transport.Observer).
func (m *Metrics) ObserveCall(app, op string, status int, took time.Duration) {
	m.APICalls.WithLabelValues(app, op, itoa(status)).Inc()
	m.APISeconds.WithLabelValues(app).Observe(took.Seconds())
	if status == 429 {
		m.RateLimited.WithLabelValues(app).Inc()
	}
}

// ObserveLimiterWait records how long a call waited for the rate limiter
// (transport.Observer).
func (m *Metrics) ObserveLimiterWait(app string, waited time.Duration) {
	m.LimiterWaits.WithLabelValues(app).Observe(waited.Seconds())
}

// ObserveRefresh records one token refresh.
func (m *Metrics) ObserveRefresh(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.TokenRefreshes.WithLabelValues(result).Inc()
}

// observePoll records one poll: its result, its lag behind the due time of
// its slot and its items.
func (m *Metrics) observePoll(rec *history.Poll) {
	if m == nil {
		return
	}
	switch {
	case rec.Skipped != "":
		m.PollResults.WithLabelValues("skipped").Inc()
		return
	case rec.Error != "":
		m.PollResults.WithLabelValues("error").Inc()
	default:
		m.PollResults.WithLabelValues("ok").Inc()
	}
	if rec.Lag > 0 {
		m.PollLag.Observe(rec.Lag.Seconds())
	}
	m.ItemsRead.Add(float64(rec.Read))
	m.ItemsNew.Add(float64(rec.New))
}

func itoa(n int) string { return strconv.Itoa(n) }

// timedCaller measures the steps of chains by operation.
type timedCaller struct {
	actions.Caller
	m *Metrics
}

// Call implements actions.Caller.
func (c timedCaller) Call(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, error) {
	start := time.Now()
	out, err := c.Caller.Call(ctx, connection, op, input)
	c.m.StepSeconds.WithLabelValues(op.ID).Observe(time.Since(start).Seconds())
	return out, err
}

// stateCollector reports, at each scrape, the queue sizes, the
// subscriptions in force by status and the tenants by status.
type stateCollector struct {
	e                    *Engine
	queue, subs, tenants *prometheus.Desc
	queues               []string

	// The tenants by status, counted at tenantsVersion: a scrape reads
	// them again only when the tenants changed (one GET otherwise).
	mu             sync.Mutex
	tenantsVersion int64
	tenantCounts   map[string]int
}

func newStateCollector(e *Engine) *stateCollector {
	return &stateCollector{e: e,
		queue: prometheus.NewDesc("ghlflow_queue_tasks", "Tasks in the engine's queues by queue and state.",
			[]string{"queue", "state"}, nil),
		subs: prometheus.NewDesc("ghlflow_subscriptions", "Subscriptions in force by status (active, paused).",
			[]string{"status"}, nil),
		tenants: prometheus.NewDesc("ghlflow_tenants", "Tenants by status.", []string{"status"}, nil),
		queues:  []string{QueuePoll, QueueChain},
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queue
	ch <- c.subs
	ch <- c.tenants
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, base := range c.queues {
		info, err := c.e.inspector.GetQueueInfo(QueueName(c.e.cfg.Prefix, base))
		if err != nil {
			info = &asynq.QueueInfo{} // not created yet: empty
		}
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived} {
			ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(n), base, state)
		}
	}
	subs := map[string]int{"active": 0, "paused": 0}
	for _, s := range c.e.reg.All() {
		if _, paused := c.e.pauses.PausedReason(s.Connection); paused {
			subs["paused"]++
		} else {
			subs["active"]++
		}
	}
	for status, n := range subs {
		ch <- prometheus.MustNewConstMetric(c.subs, prometheus.GaugeValue, float64(n), status)
	}
	byStatus, err := c.tenantsByStatus()
	if err != nil {
		return
	}
	for status, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(c.tenants, prometheus.GaugeValue, float64(n), status)
	}
}

// tenantsByStatus counts the tenants by status, reading them all only
// when their version moved since the last count.
func (c *stateCollector) tenantsByStatus() (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := c.e.tenants.Version(ctx)
	if err != nil {
		return nil, err
	}
	if c.tenantCounts != nil && v == c.tenantsVersion {
		return c.tenantCounts, nil
	}
	ts, v, err := c.e.tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	byStatus := map[string]int{tenant.StatusActive: 0, tenant.StatusPaused: 0, tenant.StatusUninstalled: 0}
	for _, t := range ts {
		st := t.Status
		if st == "" {
			st = tenant.StatusActive
		}
		byStatus[st]++
	}
	c.tenantsVersion, c.tenantCounts = v, byStatus
	return byStatus, nil
}
