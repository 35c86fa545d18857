package webhook

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a delivery, the result label of ghlflow_webhooks_total.
const (
	ResultAccepted     = "accepted"      // stored, to be routed
	ResultDuplicate    = "duplicate"     // its webhookId was accepted before
	ResultUnsigned     = "unsigned"      // no signature header
	ResultBadSignature = "bad_signature" // no key verifies it
	ResultStale        = "stale"         // its timestamp is too old (or missing, or far ahead)
	ResultOversized    = "oversized"     // its body is over the size limit
	ResultMalformed    = "malformed"     // not a JSON object
	ResultUnavailable  = "unavailable"   // it could not be stored; the sender is asked to retry
	ResultRouted       = "routed"        // its item went to at least one recipe
	ResultUnrouted     = "unrouted"      // no recipe listens to its type at its location
)

// Metrics are the webhook side's Prometheus metrics.
type Metrics struct {
	// Deliveries counts deliveries and routed events by event type and
	// result.
	Deliveries *prometheus.CounterVec
	// ChainStart is the time from a delivery's acceptance to the start of
	// the chain it fired.
	ChainStart prometheus.Histogram
	// known are the type label's values; other types count as "other", so
	// a sender cannot grow the label set.
	known []string
}

// NewMetrics registers the webhook metrics in reg; types are the event
// types counted under their own name.
func NewMetrics(reg prometheus.Registerer, types []string) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghlflow_webhooks_total",
			Help: "Webhook deliveries by event type and result (accepted, duplicate, unsigned, bad_signature, stale, " +
				"oversized, malformed, unavailable) and accepted events by routing result (routed, unrouted)."},
			[]string{"type", "result"}),
		ChainStart: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ghlflow_webhook_chain_start_seconds",
			Help:    "Time from a webhook's acceptance to the start of the chain it fired.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		known: slices.Clone(types),
	}
	reg.MustRegister(m.Deliveries, m.ChainStart)
	return m
}

// Count adds one delivery or event of typ with result.
func (m *Metrics) Count(typ, result string) {
	if m == nil {
		return
	}
	if typ == "" {
		typ = "none"
	} else if !slices.Contains(m.known, typ) {
		typ = "other"
	}
	m.Deliveries.WithLabelValues(typ, result).Inc()
}
