package sim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults is the fault injection in force. Shares are fractions of requests
// in [0, 1].
type Faults struct {
	// Latency delays every request by Latency plus a uniform random part of
	// up to Jitter.
	Latency time.Duration `json:"latency"`
	Jitter  time.Duration `json:"jitter"`
	// Error5xx is the share of requests answered with a 500, 502 or 503.
	Error5xx float64 `json:"error5xx"`
	// Timeout is the share of requests held until the client gives up (or
	// TimeoutAfter passes, then dropped).
	Timeout      float64       `json:"timeout"`
	TimeoutAfter time.Duration `json:"timeoutAfter"`
	// Reset is the share of requests whose connection is closed without an
	// answer.
	Reset float64 `json:"reset"`
	// Burst429 refuses the next N requests with 429, as if the burst budget
	// were spent.
	Burst429 int `json:"burst429"`
	// WebhookDrop loses the next N webhook deliveries: they are never
	// sent (Deliveries lists them with Dropped set).
	WebhookDrop int `json:"webhookDrop"`
}

type faultState struct {
	mu     sync.Mutex
	f      Faults
	rng    *rand.Rand
	on     atomic.Bool
	forced atomic.Int64
	drops  atomic.Int64
	counts faultCounters
}

func newFaultState(f Faults, seed uint64) *faultState {
	fs := &faultState{rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	fs.set(f)
	return fs
}

func (fs *faultState) set(f Faults) {
	fs.mu.Lock()
	fs.f = f
	fs.mu.Unlock()
	fs.forced.Store(int64(f.Burst429))
	fs.drops.Store(int64(f.WebhookDrop))
	fs.on.Store(f.Latency > 0 || f.Jitter > 0 || f.Error5xx > 0 || f.Timeout > 0 || f.Reset > 0)
}

func (fs *faultState) active() bool { return fs.on.Load() }

// take429 consumes one forced 429, reporting whether there was one.
func (fs *faultState) take429() bool {
	for {
		n := fs.forced.Load()
		if n <= 0 {
			return false
		}
		if fs.forced.CompareAndSwap(n, n-1) {
			fs.counts.forced.Add(1)
			return true
		}
	}
}

// takeDrop consumes one webhook drop, reporting whether there was one.
func (fs *faultState) takeDrop() bool {
	for {
		n := fs.drops.Load()
		if n <= 0 {
			return false
		}
		if fs.drops.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// ParseFaults reads a fault spec: comma-separated key=value pairs among
// latency=50ms, jitter=20ms, 5xx=0.02, timeout=0.01, timeout-after=30s,
// reset=0.01, 429=20 (the next 20 requests get 429), webhook-drop=3 (the
// next 3 webhook deliveries are lost). "" is no faults.
func ParseFaults(spec string) (Faults, error) {
	var f Faults
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return f, fmt.Errorf("fault %q: want key=value", part)
		}
		var err error
		switch strings.ToLower(k) {
		case "latency":
			f.Latency, err = time.ParseDuration(v)
		case "jitter":
			f.Jitter, err = time.ParseDuration(v)
		case "timeout-after":
			f.TimeoutAfter, err = time.ParseDuration(v)
		case "5xx", "error5xx":
			f.Error5xx, err = parseShare(v)
		case "timeout":
			f.Timeout, err = parseShare(v)
		case "reset":
			f.Reset, err = parseShare(v)
		case "429", "burst429":
			f.Burst429, err = strconv.Atoi(v)
		case "webhook-drop", "webhookdrop":
			f.WebhookDrop, err = strconv.Atoi(v)
		default:
			return f, fmt.Errorf("fault %q: unknown key (latency, jitter, 5xx, timeout, timeout-after, reset, 429, webhook-drop)", k)
		}
		if err != nil {
			return f, fmt.Errorf("fault %s: %w", k, err)
		}
	}
	return f, nil
}

func parseShare(v string) (float64, error) {
	x, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil {
		return 0, err
	}
	if strings.HasSuffix(v, "%") {
		x /= 100
	}
	if x < 0 || x > 1 {
		return 0, fmt.Errorf("share %v is not between 0 and 1", x)
	}
	return x, nil
}

// SetFaults replaces the fault injection in force.
func (s *Server) SetFaults(f Faults) { s.faults.set(f) }

// CurrentFaults returns the fault injection in force (Burst429 and
// WebhookDrop are the forced 429s and the drops still to come).
func (s *Server) CurrentFaults() Faults {
	s.faults.mu.Lock()
	f := s.faults.f
	s.faults.mu.Unlock()
	f.Burst429 = int(s.faults.forced.Load())
	f.WebhookDrop = int(s.faults.drops.Load())
	return f
}
