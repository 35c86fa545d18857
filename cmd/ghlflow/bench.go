package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ghlflow/ghlflow/engine/bench"
)

// runBench is `ghlflow bench`: the engine, the simulator and Redis as
// separate processes under a chosen load; a table at the end, bench.json
// and bench.svg in --out.
func runBench(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	scenario := fs.String("scenario", bench.Steady, "steady, scale, budget or chaos")
	tenants := fs.Int("tenants", 10, "tenants (each its own simulated location)")
	recipes := fs.Int("recipes", 10, "recipes per tenant (new contacts → a note)")
	every := fs.Duration("every", 10*time.Second, "poll interval of every subscription")
	duration := fs.Duration("duration", 30*time.Second, "how long the load is held (each step, for scale)")
	workers := fs.Int("workers", 2, "engine processes (each schedules and runs polls and chains)")
	pollN := fs.Int("poll-concurrency", 16, "poll workers per process")
	churn := fs.Float64("churn", 0, "new contacts per second over all locations (0 = one per location every 20 s)")
	out := fs.String("out", "bench-out", "folder for bench.json, bench.svg and the processes' logs")
	share := fs.Bool("share-polls", false, "run the engine with --share-polls (the bench's recipes all send the same search)")
	profile := fs.Bool("cpuprofile", false, "write a CPU profile of the first worker to OUT/worker-1.pprof")
	drain := fs.Duration("drain", 0, "longest wait for the last actions after the load (0 = by scenario)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rep, err := bench.Run(ctx, bench.Config{Scenario: *scenario, Tenants: *tenants, Recipes: *recipes, Every: *every,
		Duration: *duration, Workers: *workers, PollConcurrency: *pollN, Churn: *churn, Dir: *out, Drain: *drain, SharePolls: *share, Profile: *profile,
		Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "\nghlflow bench:", err)
		return 1
	}
	rep.Table(os.Stdout)
	fmt.Printf("\n%s\n%s\n", filepath.Join(*out, "bench.json"), filepath.Join(*out, "bench.svg"))
	return 0
}
