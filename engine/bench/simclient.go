package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The trigger and action operations of the bench recipes.
const (
	searchOp = "ghl.contacts.search"
	noteOp   = "ghl.contacts.notes.create"
)

var simHTTP = &http.Client{Timeout: 30 * time.Second}

// simStats is the simulator's /_sim/stats.
type simStats struct {
	Requests        map[string]map[string]int64 `json:"requests"`
	TooManyRequests int64                       `json:"tooManyRequests"`
	Faults          map[string]int64            `json:"faults"`
}

// ops sums an operation's requests over the locations.
func (s *simStats) ops(op string) int64 {
	var n int64
	for _, v := range s.Requests[op] {
		n += v
	}
	return n
}

func (e *env) simGet(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.sim.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := simHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("simulator %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("simulator %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (e *env) simStats(ctx context.Context) (*simStats, error) {
	var st simStats
	return &st, e.simGet(ctx, "/_sim/stats", &st)
}

// simWrite is one entry of /_sim/writes.
type simWrite struct {
	Location string    `json:"location"`
	Path     string    `json:"path"`
	Status   int       `json:"status"`
	Time     time.Time `json:"time"`
	Body     string    `json:"body"`
}

// notes returns the notes the simulator accepted (2xx), keyed by
// "recipe contact", each with the times it was received.
func (e *env) notes(ctx context.Context) (map[string][]time.Time, error) {
	var ws []simWrite
	if err := e.simGet(ctx, "/_sim/writes?op="+noteOp, &ws); err != nil {
		return nil, err
	}
	out := map[string][]time.Time{}
	for _, w := range ws {
		if w.Status/100 != 2 {
			continue
		}
		var b struct {
			Body string `json:"body"`
		}
		if json.Unmarshal([]byte(w.Body), &b) != nil || b.Body == "" {
			continue
		}
		out[b.Body] = append(out[b.Body], w.Time)
	}
	return out, nil
}

// setFaults replaces the simulator's fault injection (the --faults form).
func (e *env) setFaults(ctx context.Context, faults string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.sim.url+"/_sim/faults", strings.NewReader(faults))
	if err != nil {
		return err
	}
	resp, err := simHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("simulator faults: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("simulator faults: %s", resp.Status)
	}
	return nil
}
