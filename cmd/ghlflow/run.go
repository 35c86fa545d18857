package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// runRun is `ghlflow run`: the scheduler and the workers in one process,
// with the asynq web UI at /monitoring.
func runRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var recipes multiFlag
	fs.Var(&recipes, "recipes", "recipe file or folder (repeatable)")
	redisURL := fs.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	connFile := fs.String("connections", "", "static connections file (YAML)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address of /monitoring, /healthz and /metrics (\"\" = off)")
	baseURL := fs.String("base-url", "", "send every app's requests to this base URL (a simulator)")
	prefix := fs.String("prefix", "ghlflow:", "prefix of the engine's Redis keys")
	pollN := fs.Int("poll-concurrency", 8, "poll workers")
	chainN := fs.Int("chain-concurrency", 16, "chain workers")
	retention := fs.Duration("retention", engine.DefaultChainRetention, "how long a completed chain keeps its task id")
	tick := fs.Duration("tick", time.Second, "scheduler tick")
	every := fs.Duration("every", 0, "poll every subscription at this interval instead of the recipe's (tests, demos)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(recipes) == 0 {
		fmt.Fprintln(os.Stderr, "ghlflow run: --recipes is required")
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	cat, err := catalog.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: load catalog:", err)
		return 1
	}
	ropt, err := redis.ParseURL(*redisURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: --redis:", err)
		return 2
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: redis:", err)
		return 1
	}
	var src auth.Source = auth.Multi{}
	if *connFile != "" {
		st, err := auth.LoadStaticConnections(*connFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow run:", err)
			return 1
		}
		src = st
	}
	metrics := engine.NewMetrics()
	tr := transport.New(transport.Config{Catalog: cat, Connections: src, BaseURL: *baseURL, Logger: log})
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: tr, Redis: rdb, Recipes: recipes, Prefix: *prefix,
		PollConcurrency: *pollN, ChainConcurrency: *chainN, Retention: *retention, TickEvery: *tick, Every: *every, Logger: log,
		OnChain: func(r engine.ChainResult) {
			metrics.ObserveChain(r)
			attrs := []any{"recipe", r.Recipe, "item", r.ItemKey, "steps", r.Steps, "result", r.Status, "took", r.Took.Round(time.Millisecond)}
			if r.Resumed > 0 {
				attrs = append(attrs, "resumed", r.Resumed)
			}
			if r.Err != nil {
				attrs = append(attrs, "err", r.Err)
				log.Warn("chain", attrs...)
				return
			}
			log.Info("chain", attrs...)
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	if *httpAddr != "" {
		h, closeMon := engine.Handler(rdb, asynq.RedisClientOpt{Addr: ropt.Addr, Username: ropt.Username,
			Password: ropt.Password, DB: ropt.DB}, metrics.Registry)
		defer closeMon()
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow run: --http:", err)
			return 1
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}()
		log.Info("monitoring", "url", "http://"+ln.Addr().String()+"/monitoring/")
	}
	if err := eng.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
