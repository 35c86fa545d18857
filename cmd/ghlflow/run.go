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
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/engine/webhook"
)

// runOptions are the flags of `ghlflow run`.
type runOptions struct {
	recipes                                       multiFlag
	redisURL, connFile, httpAddr, baseURL, prefix string
	devKeyFile, redirect, hookKey                 string
	pollN, chainN                                 int
	retention, tick, every                        time.Duration
	everySet, dev, noLimit, verbose               bool
	monitoringWrite                               bool
}

// runCommand is `ghlflow run`: the scheduler and the workers in one
// process, with the asynq web UI at /monitoring.
func runCommand() *command {
	return &command{name: "run", summary: "run the engine: scheduler and workers in one process",
		details: "The recipes are linted first, against every connection (the file and the store): run does not start on an error.",
		setup: func(fs *flag.FlagSet) runFunc {
			var o runOptions
			fs.Var(&o.recipes, "recipes", "recipe file or folder (repeatable)")
			redisFlag(fs, &o.redisURL)
			fs.StringVar(&o.connFile, "connections", "", "static connections file (YAML)")
			fs.StringVar(&o.httpAddr, "http", "127.0.0.1:8080", "address of /monitoring, /healthz and /metrics (\"\" = off)")
			fs.StringVar(&o.baseURL, "base-url", "", "send every app's requests to this base URL (a simulator)")
			fs.StringVar(&o.prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
			fs.IntVar(&o.pollN, "poll-concurrency", 8, "poll workers")
			fs.IntVar(&o.chainN, "chain-concurrency", 16, "chain workers")
			fs.DurationVar(&o.retention, "retention", engine.DefaultChainRetention, "how long a completed chain keeps its task id")
			fs.DurationVar(&o.tick, "tick", time.Second, "scheduler tick")
			fs.DurationVar(&o.every, "every", 0, "poll every subscription at this interval (at least 1s) instead of the recipe's; below 1m for tests and demos only")
			fs.BoolVar(&o.dev, "dev", false, "dev mode: without "+auth.EnvSecretKey+", seal secrets with a generated development key (loudly)")
			fs.StringVar(&o.devKeyFile, "dev-key-file", "", "where dev mode keeps its key (default in the temp folder)")
			fs.StringVar(&o.redirect, "oauth-redirect", "", "OAuth redirect URL registered with the marketplace app (default http://HTTP/oauth/callback)")
			fs.BoolVar(&o.noLimit, "no-rate-limit", false, "send without the shared per-location rate limiter (not for real APIs)")
			fs.StringVar(&o.hookKey, "ghl-webhook-key", os.Getenv("GHLFLOW_GHL_WEBHOOK_KEY_FILE"),
				"PEM file of the public key(s) HighLevel signs webhooks with (default: its published legacy RSA key only)")
			fs.BoolVar(&o.verbose, "v", false, "debug logs")
			fs.BoolVar(&o.monitoringWrite, "monitoring-write", false, "let /monitoring delete, archive and run tasks (read-only by default)")
			return func(ctx context.Context, args []string) int {
				fs.Visit(func(f *flag.Flag) { o.everySet = o.everySet || f.Name == "every" })
				if len(args) > 0 {
					fmt.Fprintf(os.Stderr, "ghlflow run: unexpected argument %q (recipes go in --recipes)\n", args[0])
					return 2
				}
				return runEngine(ctx, &o)
			}
		}}
}

// MinEvery is the shortest --every: one second.
const MinEvery = time.Second

// checkEvery refuses an --every below MinEvery (0s and negative ones too,
// when given).
func checkEvery(every time.Duration, set bool) error {
	if set && every < MinEvery {
		return fmt.Errorf("--every %s: write at least %s (or leave it out for the recipes' intervals)", every, MinEvery)
	}
	return nil
}

// runEngine runs the engine with o until ctx is done.
func runEngine(ctx context.Context, o *runOptions) int {
	// Output to a closed pipe (ghlflow run | head) must not kill the
	// engine before it leaves asynq's server and worker sets: writes then
	// fail with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	if len(o.recipes) == 0 {
		fmt.Fprintln(os.Stderr, "ghlflow run: --recipes is required")
		return 2
	}
	if err := checkEvery(o.every, o.everySet); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 2
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	if o.everySet && o.every < catalog.MinEvery {
		log.Warn("test setting: every subscription polls every "+o.every.String()+", faster than recipes may ask (1m to 15m); not for real APIs", "every", o.every)
	}

	cat, err := catalog.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: load catalog:", err)
		return 1
	}
	ropt, err := redisOptions(o.redisURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 2
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: redis:", err)
		return 1
	}
	if n, err := auth.MoveLegacyKeys(ctx, rdb, o.prefix); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	} else if n > 0 {
		log.Info("connections moved to their current keys", "connections", n)
	}
	if o.redirect == "" && o.httpAddr != "" {
		o.redirect = "http://" + o.httpAddr + "/oauth/callback"
	}
	oauthApps, err := auth.OAuthFromEnv(cat, o.baseURL, o.redirect)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: OAuth client:", err)
		return 1
	}
	// Connections: the static file first, then the sealed store in Redis
	// (OAuth installs, `ghlflow connect`).
	var static *auth.Static
	src := auth.Multi{}
	var known []auth.Connection
	if o.connFile != "" {
		if static, err = auth.LoadStaticConnections(o.connFile); err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow run:", err)
			return 1
		}
		src = append(src, static)
		known = append(known, static.List()...)
	}
	stored, err := auth.ListConnections(ctx, rdb, o.prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run: list stored connections:", err)
		return 1
	}
	known = append(known, stored...)
	store, code := openStore(rdb, o, log, oauthApps, len(stored) > 0)
	if code != 0 {
		return code
	}
	if store != nil {
		src = append(src, store)
	}
	if !lintBeforeRun(cat, o.recipes, known, log) {
		return 1
	}
	var budget engine.Budget
	tcfg := transport.Config{Catalog: cat, Connections: src, BaseURL: o.baseURL, Logger: log}
	if !o.noLimit {
		limiter := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: o.prefix, Catalog: cat, Logger: log})
		tcfg.Limiter = limiter
		budget = &engine.LimiterBudget{Limiter: limiter, Connections: src}
	}
	metrics := engine.NewMetrics()
	hookKeys, err := webhookKeys(log, o.hookKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	hookMetrics := webhook.NewMetrics(metrics.Registry, cat.WebhookEvents())
	tr := transport.New(tcfg)
	if store != nil {
		store.UseExchanger(tr)
	}
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: tr, Redis: rdb, Recipes: o.recipes, Prefix: o.prefix,
		PollConcurrency: o.pollN, ChainConcurrency: o.chainN, Retention: o.retention, TickEvery: o.tick, Every: o.every, Logger: log,
		Budget: budget, Connections: src, Metrics: metrics, Locations: engine.ConnectionLocations{Static: static, Store: store},
		WebhookMetrics: hookMetrics, Installs: store,
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
	warnScopes(ctx, log, cat, eng, known)
	if o.httpAddr != "" {
		aopt := asynq.RedisClientOpt{Addr: ropt.Addr, Username: ropt.Username, Password: ropt.Password, DB: ropt.DB}
		h, closeMon := engine.Handler(rdb, aopt, metrics.Registry, engine.Mount{Pattern: engine.WebhookPath,
			Handler: &webhook.Handler{Keys: hookKeys, Store: webhook.NewStore(rdb, o.prefix), Metrics: hookMetrics, Logger: log}})
		defer closeMon()
		mon, closeMon2 := engine.Monitoring(aopt, o.monitoringWrite)
		defer closeMon2()
		h = siteHandler(ctx, log, siteConfig{rdb: rdb, prefix: o.prefix, cat: cat, eng: eng, store: store, recipes: o.recipes,
			oauth: len(oauthApps) > 0, engineHTTP: h, monitoring: mon})
		if len(oauthApps) > 0 {
			log.Info("oauth install", "start", "http://"+o.httpAddr+"/oauth/start?app=ghl&name=NAME&scopes=...", "redirect", o.redirect)
		}
		ln, err := net.Listen("tcp", o.httpAddr)
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
		log.Info("http", "pages", "http://"+ln.Addr().String()+"/", "api", "http://"+ln.Addr().String()+"/api/v1/",
			"monitoring", "http://"+ln.Addr().String()+"/monitoring/")
	}
	if err := eng.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return 1
	}
	return 0
}

// openStore opens the sealed connection store. Without a secret key it
// returns nil when nothing needs one: no stored connection to open and no
// OAuth client to install new ones with.
func openStore(rdb redis.UniversalClient, o *runOptions, log *slog.Logger, oauthApps map[string]*auth.OAuthApp, haveStored bool) (*auth.Store, int) {
	keys, err := auth.LoadKeyring(auth.KeyConfig{Dev: o.dev, DevFile: o.devKeyFile, Logger: log})
	if errors.Is(err, auth.ErrNoKey) {
		if !haveStored && len(oauthApps) == 0 {
			log.Debug("no secret key and nothing sealed: running with the static connections only")
			return nil, 0
		}
		why := "the connection store in Redis holds sealed connections"
		if !haveStored {
			why = "an OAuth client is configured, whose installs are sealed"
		}
		fmt.Fprintf(os.Stderr, "ghlflow run: no secret key, and %s: set %s (make one with 'ghlflow connect keygen') or %s, "+
			"or pass --dev to try ghlflow with a generated development key\n", why, auth.EnvSecretKey, auth.EnvSecretKeyFile)
		return nil, 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return nil, 1
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: o.prefix, Keys: keys, OAuth: oauthApps, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
		return nil, 1
	}
	return store, 0
}

// lintBeforeRun checks the recipes as 'ghlflow recipe lint' does, against
// every connection there is: the engine starts only when there is no
// error. Warnings are logged.
func lintBeforeRun(cat *catalog.Catalog, paths []string, conns []auth.Connection, log *slog.Logger) bool {
	l := &catalog.RecipeLoader{Catalog: cat, Connections: connectionApps(conns), AllConnections: true}
	_, err := l.Load(paths...)
	for _, w := range l.Warnings {
		log.Warn("recipe", "warning", w.Error())
	}
	if err == nil {
		return true
	}
	var es catalog.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(os.Stderr, e)
		}
		fmt.Fprintf(os.Stderr, "ghlflow run: %d problem(s) in the recipes; 'ghlflow recipe lint' checks them without starting\n", len(es))
	} else {
		fmt.Fprintln(os.Stderr, "ghlflow run:", err)
	}
	return false
}

// warnScopes logs every recipe step whose connection lacks the scope it
// needs (the call would be refused with a 403).
func warnScopes(ctx context.Context, log *slog.Logger, cat *catalog.Catalog, eng *engine.Engine, conns []auth.Connection) {
	var recipes []*catalog.Recipe
	for _, s := range eng.Registry().All() {
		recipes = append(recipes, s.Recipe)
	}
	for _, w := range auth.CheckScopes(cat, recipes, conns) {
		log.Warn("missing scope", "recipe", w.Recipe, "op", w.Op, "connection", w.Connection, "scope", w.Scope, "at", fmt.Sprintf("%s:%d", w.File, w.Line), "fix", w.Fix())
	}
}

// webhookKeys are the keys of --ghl-webhook-key, or HighLevel's published
// legacy key.
func webhookKeys(log *slog.Logger, file string) (webhook.Keys, error) {
	if file != "" {
		return webhook.LoadKeys(file)
	}
	log.Info("no --ghl-webhook-key: webhooks verify only with HighLevel's published legacy RSA key (x-wh-signature)")
	return webhook.DefaultKeys(), nil
}
