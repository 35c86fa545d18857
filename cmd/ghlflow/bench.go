package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ghlflow/ghlflow/engine/bench"
)

// benchCommand is `ghlflow bench`: the engine, the simulator and Redis as
// separate processes under a chosen load; a table at the end, bench.json
// and bench.svg in --out.
func benchCommand() *command {
	return &command{name: "bench", summary: "measure the engine under load: throughput, poll lag, CPU, memory, lost and duplicate actions",
		details: "Starts its own redis-server, the simulator and --workers engine processes; tenants × recipes\n" +
			"subscriptions (new contacts → a note) poll every --every while new contacts arrive.\n" +
			"Scenarios: steady (one load), scale (tenants doubled until poll lag p99 passes 5 s),\n" +
			"budget (polls beyond the locations' rate budgets), chaos (workers killed, Redis restarted,\n" +
			"5xx, timeouts and 429 bursts).",
		setup: func(fs *flag.FlagSet) runFunc {
			var cfg bench.Config
			fs.StringVar(&cfg.Scenario, "scenario", bench.Steady, "steady, scale, budget or chaos")
			fs.IntVar(&cfg.Tenants, "tenants", 10, "tenants (each its own simulated location)")
			fs.IntVar(&cfg.Recipes, "recipes", 10, "recipes per tenant (new contacts → a note)")
			fs.DurationVar(&cfg.Every, "every", 10*time.Second, "poll interval of every subscription")
			fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long the load is held (each step, for scale)")
			fs.IntVar(&cfg.Workers, "workers", 2, "engine processes (each schedules and runs polls and chains)")
			fs.IntVar(&cfg.PollConcurrency, "poll-concurrency", 16, "poll workers per process")
			fs.Float64Var(&cfg.Churn, "churn", 0, "new contacts per second over all locations (0 = one per location every 20 s)")
			fs.StringVar(&cfg.Dir, "out", "bench-out", "folder for bench.json, bench.svg and the processes' logs")
			fs.DurationVar(&cfg.Drain, "drain", 0, "longest wait for the last actions after the load (0 = by scenario)")
			fs.BoolVar(&cfg.SharePolls, "share-polls", false, "run the engine with --share-polls (the bench's recipes all send the same search)")
			fs.DurationVar(&cfg.LagLimit, "lag-limit", 5*time.Second, "scale: the poll lag p99 a load must hold")
			fs.BoolVar(&cfg.Profile, "cpuprofile", false, "write a CPU profile of the first worker to OUT/worker-1.pprof")
			return func(ctx context.Context, args []string) int {
				if len(args) > 0 {
					fmt.Fprintf(os.Stderr, "ghlflow bench: unexpected argument %q\n", args[0])
					return 2
				}
				cfg.Progress = os.Stderr
				rep, err := bench.Run(ctx, cfg)
				if err != nil {
					fmt.Fprintln(os.Stderr, "\nghlflow bench:", err)
					return 1
				}
				rep.Table(os.Stdout)
				fmt.Printf("\n%s\n%s\n", filepath.Join(cfg.Dir, "bench.json"), filepath.Join(cfg.Dir, "bench.svg"))
				return 0
			}
		}}
}
