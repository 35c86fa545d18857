package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/redisconn"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/config"
)

// role is what one engine process does: serve (HTTP: pages, OAuth,
// monitoring), worker, scheduler, or all of them.
type role struct {
	name, help string
	// engine are the engine roles the process runs.
	engine engine.Roles
	// front: the process serves the HTTP front (monitoring, OAuth).
	front bool
	// httpAddr is the default of --http.
	httpAddr string
}

// roles are the engine's process roles; run is all's old name.
var roles = []role{
	{name: "serve", help: "serve HTTP: monitoring, OAuth installs, /healthz, /readyz, /metrics", front: true, httpAddr: "127.0.0.1:8080"},
	{name: "worker", help: "run the poll and chain queues", engine: engine.RoleWorker},
	{name: "scheduler", help: "enqueue the polls that are due (any number of them)", engine: engine.RoleScheduler},
	{name: "all", help: "serve, worker and scheduler in one process", engine: engine.AllRoles, front: true, httpAddr: "127.0.0.1:8080"},
	{name: "run", help: "the same as all", engine: engine.AllRoles, front: true, httpAddr: "127.0.0.1:8080"},
}

// engineOptions are the flags of the engine's roles.
type engineOptions struct {
	config                                        string
	recipes                                       multiFlag
	redisURL, connFile, httpAddr, baseURL, prefix string
	metricsAddr, logFormat                        string
	devKeyFile, redirect                          string
	pollN, chainN                                 int
	retention, tick, every                        time.Duration
	dev, noLimit, verbose                         bool
}

// engineFlags is the flag set of role r, which fills o.
func engineFlags(r role, o *engineOptions) *flag.FlagSet {
	fs := flag.NewFlagSet(r.name, flag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "YAML file of settings (keys are the flag names); flags and "+config.EnvPrefix+"* variables win")
	fs.Var(&o.recipes, "recipes", "recipe file or folder (repeatable; "+config.EnvName("recipes")+" separates them with commas)")
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis URL: redis://, rediss://, redis-sentinel://HOST:PORT,.../MASTER, redis-cluster://HOST:PORT,... (also REDIS_URL)")
	fs.StringVar(&o.connFile, "connections", "", "static connections file (YAML)")
	fs.StringVar(&o.httpAddr, "http", r.httpAddr, "HTTP address (\"\" = off): /healthz, /readyz and /metrics"+frontHelp(r))
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics on this address alone instead of on --http")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.baseURL, "base-url", "", "send every app's requests to this base URL (a simulator)")
	fs.StringVar(&o.prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	fs.IntVar(&o.pollN, "poll-concurrency", 8, "poll workers")
	fs.IntVar(&o.chainN, "chain-concurrency", 16, "chain workers")
	fs.DurationVar(&o.retention, "retention", engine.DefaultChainRetention, "how long a completed chain keeps its task id")
	fs.DurationVar(&o.tick, "tick", time.Second, "scheduler tick")
	fs.DurationVar(&o.every, "every", 0, "poll every subscription at this interval instead of the recipe's (tests, demos)")
	fs.BoolVar(&o.dev, "dev", false, "dev mode: without "+auth.EnvSecretKey+", seal secrets with a generated development key (loudly)")
	fs.StringVar(&o.devKeyFile, "dev-key-file", "", "where dev mode keeps its key (default in the temp folder)")
	fs.StringVar(&o.redirect, "oauth-redirect", "", "OAuth redirect URL registered with the marketplace app (default http://HTTP/oauth/callback)")
	fs.BoolVar(&o.noLimit, "no-rate-limit", false, "send without the shared per-location rate limiter (not for real APIs)")
	fs.BoolVar(&o.verbose, "v", false, "debug logs")
	return fs
}

func frontHelp(r role) string {
	if r.front {
		return ", /monitoring and /oauth/"
	}
	return ""
}

// configAliases are environment variables read after a flag's GHLFLOW_ one.
var configAliases = map[string][]string{"redis": {"REDIS_URL"}}

// roleCommand is the entry point of role r.
func roleCommand(r role) func(ctx context.Context, args []string) int {
	return func(ctx context.Context, args []string) int {
		var o engineOptions
		fs := engineFlags(r, &o)
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if o.config == "" {
			o.config = os.Getenv(config.EnvName("config"))
		}
		if err := config.Apply(fs, config.Source{File: o.config, Aliases: configAliases}); err != nil {
			fmt.Fprintf(os.Stderr, "ghlflow %s: %v\n", r.name, err)
			return 2
		}
		if len(o.recipes) == 0 {
			fmt.Fprintf(os.Stderr, "ghlflow %s: --recipes is required\n", r.name)
			return 2
		}
		log, err := newLogger(os.Stderr, o.logFormat, o.verbose)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ghlflow %s: %v\n", r.name, err)
			return 2
		}
		slog.SetDefault(log)
		if err := runRole(ctx, r, &o, log); err != nil {
			fmt.Fprintf(os.Stderr, "ghlflow %s: %v\n", r.name, err)
			var u usageError
			if errors.As(err, &u) {
				return 2
			}
			return 1
		}
		return 0
	}
}

// newLogger is the process's logger: text or JSON lines on w.
func newLogger(w io.Writer, format string, verbose bool) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		opts.Level = slog.LevelDebug
	}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: text or json", format)
}

// usageError is a mistake of the command line or the configuration (exit
// code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// process is what a role's process holds while it runs.
type process struct {
	log       *slog.Logger
	cat       *catalog.Catalog
	redis     *redisconn.Options
	rdb       redis.UniversalClient
	store     *auth.Store
	static    *auth.Static
	oauth     map[string]*auth.OAuthApp
	metrics   *engine.Metrics
	eng       *engine.Engine
	redirect  string
	closeFunc []func()
}

func (p *process) close() {
	for i := len(p.closeFunc) - 1; i >= 0; i-- {
		p.closeFunc[i]()
	}
}

// runRole starts the engine's parts of role r and its HTTP side, until ctx
// ends.
func runRole(ctx context.Context, r role, o *engineOptions, log *slog.Logger) error {
	p, err := openProcess(ctx, o, log)
	if err != nil {
		return err
	}
	defer p.close()
	if err := p.newEngine(o); err != nil {
		return err
	}
	if r.front {
		warnScopes(ctx, log, p.cat, p.eng, p.store, p.static)
	}
	if err := p.serveHTTP(ctx, r, o); err != nil {
		return err
	}
	return p.eng.RunRoles(ctx, r.engine)
}

// openProcess connects to Redis and opens the connections.
func openProcess(ctx context.Context, o *engineOptions, log *slog.Logger) (*process, error) {
	p := &process{log: log, metrics: engine.NewMetrics()}
	var err error
	if p.cat, err = catalog.Default(); err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	if p.redis, err = redisconn.Parse(o.redisURL); err != nil {
		return nil, usageError{fmt.Errorf("--redis: %w", err)}
	}
	p.rdb = p.redis.Client()
	p.closeFunc = append(p.closeFunc, func() { _ = p.rdb.Close() })
	if err := p.rdb.Ping(ctx).Err(); err != nil {
		p.close()
		return nil, fmt.Errorf("redis %s: %w", strings.Join(p.redis.Addrs(), ","), err)
	}
	if err := p.openConnections(ctx, o); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *process) openConnections(ctx context.Context, o *engineOptions) error {
	if n, err := auth.MoveLegacyKeys(ctx, p.rdb, o.prefix); err != nil {
		return err
	} else if n > 0 {
		p.log.Info("connections moved to their current keys", "connections", n)
	}
	// Connections: the static file first, then the sealed store in Redis
	// (OAuth installs, `ghlflow connect`).
	keys, err := auth.LoadKeyring(auth.KeyConfig{Dev: o.dev, DevFile: o.devKeyFile, Logger: p.log})
	if errors.Is(err, auth.ErrNoKey) {
		return usageError{fmt.Errorf("no secret key: set %s (make one with 'ghlflow connect keygen') or %s, "+
			"or pass --dev to try ghlflow with a generated development key", auth.EnvSecretKey, auth.EnvSecretKeyFile)}
	}
	if err != nil {
		return err
	}
	p.redirect = o.redirect
	if p.redirect == "" && o.httpAddr != "" {
		p.redirect = "http://" + o.httpAddr + "/oauth/callback"
	}
	if p.oauth, err = auth.OAuthFromEnv(p.cat, o.baseURL, p.redirect); err != nil {
		return fmt.Errorf("OAuth client: %w", err)
	}
	p.store, err = auth.NewStore(auth.StoreConfig{Redis: p.rdb, Prefix: o.prefix, Keys: keys, OAuth: p.oauth, Logger: p.log,
		OnRefresh: p.metrics.ObserveRefresh})
	if err != nil {
		return err
	}
	if o.connFile != "" {
		if p.static, err = auth.LoadStaticConnections(o.connFile); err != nil {
			return err
		}
	}
	return nil
}

// newEngine builds the engine on the process's connections.
func (p *process) newEngine(o *engineOptions) error {
	src := auth.Multi{p.store}
	if p.static != nil {
		src = auth.Multi{p.static, p.store}
	}
	var budget engine.Budget
	tcfg := transport.Config{Catalog: p.cat, Connections: src, BaseURL: o.baseURL, Logger: p.log, Observer: p.metrics}
	if !o.noLimit {
		limiter := ratelimit.New(ratelimit.Config{Redis: p.rdb, Prefix: o.prefix, Catalog: p.cat, Logger: p.log})
		tcfg.Limiter = limiter
		budget = &engine.LimiterBudget{Limiter: limiter, Connections: src}
	}
	tr := transport.New(tcfg)
	p.store.UseExchanger(tr)
	var err error
	p.eng, err = engine.New(engine.Config{Catalog: p.cat, Caller: tr, Redis: p.rdb, Recipes: o.recipes, Prefix: o.prefix,
		PollConcurrency: o.pollN, ChainConcurrency: o.chainN, Retention: o.retention, TickEvery: o.tick, Every: o.every, Logger: p.log,
		Budget: budget, Connections: src, Metrics: p.metrics, OnChain: p.onChain})
	return err
}

// onChain counts a chain run and logs it; a failure's reason is logged
// once by the engine, the tries before it are debug lines.
func (p *process) onChain(r engine.ChainResult) {
	p.metrics.ObserveChain(r)
	attrs := []any{"recipe", r.Recipe, "item", r.ItemKey, "run", r.TaskID, "steps", r.Steps, "result", r.Status,
		"took", r.Took.Round(time.Millisecond)}
	if r.Resumed > 0 {
		attrs = append(attrs, "resumed", r.Resumed)
	}
	if r.Err != nil {
		p.log.Debug("chain", append(attrs, "err", r.Err)...)
		return
	}
	p.log.Info("chain", attrs...)
}

// serveHTTP starts the HTTP side of role r: the probes and metrics of
// every role, and the front (monitoring, OAuth installs) of serve and all.
func (p *process) serveHTTP(ctx context.Context, r role, o *engineOptions) error {
	metricsReg := p.metrics.Registry
	if o.metricsAddr != "" {
		if err := p.listen(o.metricsAddr, engine.Probes(p.rdb, nil, p.metrics.Registry)); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		p.log.Info("metrics", "url", "http://"+o.metricsAddr+"/metrics")
		metricsReg = nil
	}
	if o.httpAddr == "" {
		return nil
	}
	mux := engine.Probes(p.rdb, p.eng.Ready, metricsReg)
	if r.front {
		front, closeMon := engine.Handler(p.rdb, p.redis.Asynq(), metricsReg)
		p.closeFunc = append(p.closeFunc, func() { _ = closeMon() })
		mux.Handle("/", front)
		if len(p.oauth) > 0 {
			mux.Handle("/oauth/", p.store.InstallHandler(engine.InstallTenants(p.eng.Tenants())))
			p.log.Info("oauth install", "start", "http://"+o.httpAddr+"/oauth/start?app=ghl&name=NAME&scopes=...", "redirect", p.redirect)
		}
		p.log.Info("monitoring", "url", "http://"+o.httpAddr+"/monitoring/")
	}
	return p.listen(o.httpAddr, mux)
}

// listen serves h on addr until the process closes.
func (p *process) listen(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	p.closeFunc = append(p.closeFunc, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	return nil
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

// dialRedis returns a client of the Redis at url (any URL redisconn reads).
func dialRedis(url string) (redis.UniversalClient, error) {
	o, err := redisconn.Parse(url)
	if err != nil {
		return nil, err
	}
	return o.Client(), nil
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
