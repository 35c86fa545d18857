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
	"github.com/ghlflow/ghlflow/engine/ratelimit"
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
	prefix := fs.String("prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	pollN := fs.Int("poll-concurrency", 8, "poll workers")
	chainN := fs.Int("chain-concurrency", 16, "chain workers")
	retention := fs.Duration("retention", engine.DefaultChainRetention, "how long a completed chain keeps its task id")
	tick := fs.Duration("tick", time.Second, "scheduler tick")
	every := fs.Duration("every", 0, "poll every subscription at this interval instead of the recipe's (tests, demos)")
	dev := fs.Bool("dev", false, "dev mode: without "+auth.EnvSecretKey+", seal secrets with a generated development key (loudly)")
	devKeyFile := fs.String("dev-key-file", "", "where dev mode keeps its key (default in the temp folder)")
	redirect := fs.String("oauth-redirect", "", "OAuth redirect URL registered with the marketplace app (default http://HTTP/oauth/callback)")
	noLimit := fs.Bool("no-rate-limit", false, "send without the shared per-location rate limiter (not for real APIs)")
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
	if n, err := auth.MoveLegacyKeys(ctx, rdb, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	} else if n > 0 {
		log.Info("connections moved to their current keys", "connections", n)
	}
	// Connections: the static file first, then the sealed store in Redis
	// (OAuth installs, `ghlflow connect`).
	keys, err := auth.LoadKeyring(auth.KeyConfig{Dev: *dev, DevFile: *devKeyFile, Logger: log})
	if errors.Is(err, auth.ErrNoKey) {
		fmt.Fprintf(os.Stderr, "ghlflow run: no secret key: set %s (make one with 'ghlflow connect keygen') or %s, "+
			"or pass --dev to try ghlflow with a generated development key\n", auth.EnvSecretKey, auth.EnvSecretKeyFile)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	if *redirect == "" && *httpAddr != "" {
		*redirect = "http://" + *httpAddr + "/oauth/callback"
	}
	oauthApps, err := auth.OAuthFromEnv(cat, *baseURL, *redirect)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: OAuth client:", err)
		return 1
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: *prefix, Keys: keys, OAuth: oauthApps, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	src := auth.Multi{store}
	var static *auth.Static
	if *connFile != "" {
		if static, err = auth.LoadStaticConnections(*connFile); err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow run:", err)
			return 1
		}
		src = auth.Multi{static, store}
	}
	var budget engine.Budget
	tcfg := transport.Config{Catalog: cat, Connections: src, BaseURL: *baseURL, Logger: log}
	if !*noLimit {
		limiter := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: *prefix, Catalog: cat, Logger: log})
		tcfg.Limiter = limiter
		budget = &engine.LimiterBudget{Limiter: limiter, Connections: src}
	}
	metrics := engine.NewMetrics()
	tr := transport.New(tcfg)
	store.UseExchanger(tr)
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: tr, Redis: rdb, Recipes: recipes, Prefix: *prefix,
		PollConcurrency: *pollN, ChainConcurrency: *chainN, Retention: *retention, TickEvery: *tick, Every: *every, Logger: log,
		Budget: budget, Connections: src, Metrics: metrics,
		OnChain: func(r engine.ChainResult) {
			metrics.ObserveChain(r)
			attrs := []any{"recipe", r.Recipe, "item", r.ItemKey, "steps", r.Steps, "result", r.Status, "took", r.Took.Round(time.Millisecond)}
			if r.Resumed > 0 {
				attrs = append(attrs, "resumed", r.Resumed)
			}
			if r.Err != nil {
				// The engine logs a chain's final failure with its reason,
				// once; the tries before it are debug lines.
				log.Debug("chain", append(attrs, "err", r.Err)...)
				return
			}
			log.Info("chain", attrs...)
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	warnScopes(ctx, log, cat, eng, store, static)
	if *httpAddr != "" {
		h, closeMon := engine.Handler(rdb, asynq.RedisClientOpt{Addr: ropt.Addr, Username: ropt.Username,
			Password: ropt.Password, DB: ropt.DB}, metrics.Registry)
		defer closeMon()
		if len(oauthApps) > 0 {
			mux := http.NewServeMux()
			mux.Handle("/oauth/", store.InstallHandler(engine.InstallTenants(eng.Tenants())))
			mux.Handle("/", h)
			h = mux
			log.Info("oauth install", "start", "http://"+*httpAddr+"/oauth/start?app=ghl&name=NAME&scopes=...", "redirect", *redirect)
		}
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

// warnScopes logs every recipe step whose connection lacks the scope it
// needs (the call would be refused with a 403).
func warnScopes(ctx context.Context, log *slog.Logger, cat *catalog.Catalog, eng *engine.Engine, store *auth.Store, static *auth.Static) {
	conns, err := store.List(ctx)
	if err != nil {
		log.Warn("list connections", "err", err)
	}
	if static != nil {
		conns = append(conns, static.List()...)
	}
	var recipes []*catalog.Recipe
	for _, s := range eng.Registry().All() {
		recipes = append(recipes, s.Recipe)
	}
	for _, w := range auth.CheckScopes(cat, recipes, conns) {
		log.Warn("missing scope", "recipe", w.Recipe, "op", w.Op, "connection", w.Connection, "scope", w.Scope, "at", fmt.Sprintf("%s:%d", w.File, w.Line))
	}
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
