// Package bench measures the engine end to end: it starts its own Redis,
// the simulator (`ghlflow sim`) and the engine (`ghlflow run` processes)
// as separate processes, makes tenants × recipes subscriptions, creates
// new contacts in the simulator while they poll, and reports throughput,
// poll lag, CPU per poll, memory, requests per poll, item-to-action
// latency, 429s, lost and duplicate actions.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Scenarios the bench runs.
const (
	// Steady holds one load for the duration.
	Steady = "steady"
	// Scale raises the load step by step until poll lag p99 passes the
	// scale limit and reports the largest load held.
	Scale = "scale"
	// Budget demands more polls than the locations' rate budgets allow.
	Budget = "budget"
	// Chaos kills workers, restarts Redis and injects API faults.
	Chaos = "chaos"
)

// Config is one bench run.
type Config struct {
	// Bin is the ghlflow executable the processes run.
	Bin string
	// Scenario is Steady, Scale, Budget or Chaos.
	Scenario string
	// Tenants × Recipes subscriptions poll every Every for Duration.
	Tenants, Recipes int
	Every, Duration  time.Duration
	// Workers is the number of engine processes (each schedules and works).
	Workers int
	// PollConcurrency is each process's poll workers.
	PollConcurrency int
	// Churn is new contacts created per second over all locations
	// (0: one per location every 20 s).
	Churn float64
	// Dir receives bench.json, bench.svg and the processes' logs.
	Dir string
	// Progress receives the updating progress line (nil: none).
	Progress io.Writer
	// Drain bounds the wait for the last actions after the load stops
	// (0: three intervals plus 20 s; chaos waits longer).
	Drain time.Duration
	// SharePolls runs the workers with --share-polls: the bench's recipes
	// all send the same search, so a tenant's polls of one slot share one
	// request.
	SharePolls bool
	// Profile writes a CPU profile of the first worker to
	// Dir/worker-1.pprof.
	Profile bool
	// LagLimit is the poll lag p99 the scale scenario holds (0: 5 s).
	LagLimit time.Duration

	// Filled in by the scenario.
	simArgs      []string
	faults       string
	killEvery    time.Duration
	restartRedis bool
}

func (c *Config) defaults() error {
	if c.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: ghlflow executable: %w", err)
		}
		c.Bin = exe
	}
	if c.Scenario == "" {
		c.Scenario = Steady
	}
	if c.Tenants <= 0 || c.Recipes <= 0 {
		return errors.New("bench: tenants and recipes must be positive")
	}
	if c.Every <= 0 {
		c.Every = 10 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.PollConcurrency <= 0 {
		c.PollConcurrency = 16
	}
	if c.Churn <= 0 {
		c.Churn = float64(c.Tenants) / 20
	}
	if c.Dir == "" {
		c.Dir = "bench-out"
	}
	if c.LagLimit <= 0 {
		c.LagLimit = 5 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 3*c.Every + 20*time.Second
	}
	return os.MkdirAll(c.Dir, 0o755)
}

// Run runs cfg's scenario, writes bench.json and bench.svg into cfg.Dir
// and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var rep *Report
	var err error
	switch cfg.Scenario {
	case Steady:
		cfg.simArgs = []string{"--burst", "100000"}
		rep, err = runOnce(ctx, cfg)
	case Budget:
		rep, err = runBudget(ctx, cfg)
	case Chaos:
		rep, err = runChaos(ctx, cfg)
	case Scale:
		rep, err = runScale(ctx, cfg)
	default:
		return nil, fmt.Errorf("bench: unknown scenario %q (steady, scale, budget, chaos)", cfg.Scenario)
	}
	if err != nil {
		return nil, err
	}
	if err := rep.write(cfg.Dir); err != nil {
		return rep, err
	}
	return rep, nil
}

// runBudget runs with the simulator's default GHL budget (100 requests per
// 10 s per location) and at least twice as many polls per location.
func runBudget(ctx context.Context, cfg Config) (*Report, error) {
	perWindow := float64(cfg.Recipes) * float64(10*time.Second) / float64(cfg.Every)
	if perWindow < 200 {
		cfg.Recipes = int(200*float64(cfg.Every)/float64(10*time.Second)) + 1
	}
	cfg.simArgs = []string{"--burst", "100"}
	if cfg.Drain < 6*cfg.Every+30*time.Second {
		cfg.Drain = 6*cfg.Every + 30*time.Second
	}
	return runOnce(ctx, cfg)
}

// runChaos kills a worker every few seconds, restarts Redis (append-only
// file on) once half way, and injects 20 % 5xx, 5 % timeouts and 429
// bursts.
func runChaos(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Workers < 2 {
		cfg.Workers = 2
	}
	cfg.simArgs = []string{"--burst", "100000"}
	cfg.faults = "5xx=0.2,timeout=0.05,timeout-after=2s"
	cfg.killEvery = 4 * time.Second
	cfg.restartRedis = true
	// A killed worker's tasks come back once their lease lapses.
	if cfg.Drain < 3*time.Minute {
		cfg.Drain = 3 * time.Minute
	}
	return runOnce(ctx, cfg)
}

// runScale doubles the tenants until poll lag p99 passes cfg.LagLimit or
// polls are no longer served at the demanded rate, and reports the largest
// load held, with every step.
func runScale(ctx context.Context, cfg Config) (*Report, error) {
	cfg.simArgs = []string{"--burst", "100000"}
	var steps []*Report
	var held *Report
	for t := cfg.Tenants; ; t *= 2 {
		step := cfg
		step.Tenants = t
		step.Churn = 0
		if err := step.defaults(); err != nil {
			return nil, err
		}
		step.Dir = filepath.Join(cfg.Dir, fmt.Sprintf("step-%d", t))
		if err := os.MkdirAll(step.Dir, 0o755); err != nil {
			return nil, err
		}
		rep, err := runOnce(ctx, step)
		if err != nil {
			return nil, err
		}
		steps = append(steps, rep)
		ok := rep.LagP99Ms <= float64(cfg.LagLimit.Milliseconds()) && rep.PollsServed >= 0.95*rep.PollsDemanded
		if !ok || ctx.Err() != nil {
			break
		}
		held = rep
	}
	out := steps[len(steps)-1]
	if held != nil {
		out = held
	}
	out.Scenario = Scale
	for _, s := range steps {
		out.Steps = append(out.Steps, ScaleStep{Subscriptions: s.Subscriptions, PollsDemanded: s.PollsDemanded,
			PollsServed: s.PollsServed, LagP99Ms: s.LagP99Ms, EngineCPUms: s.EngineCPUms})
	}
	out.Held = held != nil
	return out, nil
}

// recipeYAML is bench recipe i: new contacts → a note naming the recipe
// and the contact.
func recipeYAML(name string) string {
	return strings.TrimLeft(fmt.Sprintf(`
name: %[1]s
trigger:
  op: ghl.contacts.search
  every: 1m
  params:
    sort: [{field: dateAdded, direction: desc}]
steps:
  - op: ghl.contacts.notes.create
    input:
      contactId: "{{ .trigger.id }}"
      body: "%[1]s {{ .trigger.id }}"
`, name), "\n")
}
