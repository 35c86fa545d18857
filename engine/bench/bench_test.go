package bench_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/engine/bench"
)

// buildGhlflow builds the ghlflow binary the bench runs as its processes.
func buildGhlflow(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("the bench starts its own redis-server, which is not installed")
	}
	bin := filepath.Join(t.TempDir(), "ghlflow")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ghlflow").CombinedOutput()
	if err != nil {
		t.Fatalf("build ghlflow: %v\n%s", err, out)
	}
	return bin
}

// TestSteadySmoke runs the steady scenario small and checks that the
// JSON carries every figure with sane values: every poll demanded served,
// one request per poll, every created item actioned once per recipe.
func TestSteadySmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ghlflow and runs the bench for about 20 s")
	}
	bin := buildGhlflow(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, bench.Config{Bin: bin, Scenario: bench.Steady, Tenants: 2, Recipes: 3,
		Every: 2 * time.Second, Duration: 8 * time.Second, Churn: 2, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"polls_demanded_per_s", "polls_served_per_s", "lag_p50_ms", "lag_p99_ms", "lag_max_ms",
		"engine_cpu_ms_per_poll", "redis_cpu_ms_per_poll", "sim_cpu_ms_per_poll", "engine_rss_bytes", "engine_heap_inuse_bytes", "redis_bytes_per_sub",
		"redis_commands_per_poll",
		"ghl_requests_per_poll", "action_latency_p50_ms", "action_latency_p99_ms", "http_429s", "lost", "duplicate_actions",
		"duplicate_chain_runs", "series"} {
		if _, ok := m[k]; !ok {
			t.Errorf("bench.json has no %s", k)
		}
	}
	if svg, err := os.ReadFile(filepath.Join(dir, "bench.svg")); err != nil || len(svg) < 200 {
		t.Errorf("bench.svg: %v (%d bytes)", err, len(svg))
	}
	if rep.PollsDemanded != 3 || rep.PollsServed < 2 {
		t.Errorf("polls/s demanded %.1f served %.1f, want 3 and about 3", rep.PollsDemanded, rep.PollsServed)
	}
	if rep.RequestsPerPoll < 0.99 || rep.RequestsPerPoll > 1.01 {
		t.Errorf("requests per poll %.3f, want 1", rep.RequestsPerPoll)
	}
	if rep.ItemsCreated < 10 || rep.Lost != 0 || rep.DuplicateActions != 0 || rep.Actions != rep.ItemsCreated*3 {
		t.Errorf("%d items, %d actions of %d, %d lost, %d duplicate", rep.ItemsCreated, rep.Actions, rep.ActionsExpected, rep.Lost, rep.DuplicateActions)
	}
	if rep.EngineCPUms <= 0 || rep.RedisCPUms <= 0 || rep.EngineRSS <= 0 || rep.EngineHeap <= 0 || rep.LagMaxMs <= 0 || rep.ActionP99Ms <= 0 {
		t.Errorf("a figure is zero: %+v", rep)
	}
}

// TestChaosLosesNothing kills workers, restarts Redis and injects API
// faults while contacts arrive, and checks that every item got its action
// from every recipe and no chain task completed twice.
func TestChaosLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run waits for killed workers' leases to lapse (about 90 s)")
	}
	bin := buildGhlflow(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, bench.Config{Bin: bin, Scenario: bench.Chaos, Tenants: 2, Recipes: 3,
		Every: 2 * time.Second, Duration: 16 * time.Second, Churn: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos: %d kills, %d Redis restarts, faults %v, %d items, %d actions, %d lost, %d duplicate actions, %d duplicate chain runs",
		rep.Kills, rep.RedisRestarts, rep.Faults, rep.ItemsCreated, rep.Actions, rep.Lost, rep.DuplicateActions, rep.DuplicateChains)
	if rep.Kills < 2 || rep.RedisRestarts != 1 || rep.Faults["errors5xx"] == 0 || rep.TooMany == 0 {
		t.Errorf("the chaos did not happen: %d kills, %d Redis restarts, faults %v, %d 429s", rep.Kills, rep.RedisRestarts, rep.Faults, rep.TooMany)
	}
	if rep.ItemsCreated < 10 {
		t.Errorf("only %d items created", rep.ItemsCreated)
	}
	if rep.Lost != 0 || rep.DuplicateChains != 0 {
		t.Errorf("%d lost, %d duplicate chain runs; want 0 and 0", rep.Lost, rep.DuplicateChains)
	}
}
