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
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/redisconn"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/engine/webhook"
	"github.com/ghlflow/ghlflow/internal/config"
)

// role is what one engine process does: serve (HTTP: monitoring, OAuth
// installs), worker, scheduler, or all of them.
type role struct {
	name, summary string
	// engine are the engine roles the process runs.
	engine engine.Roles
	// front: the process serves the HTTP front (monitoring, OAuth).
	front bool
	// httpAddr is the default of --http.
	httpAddr string
}

// roles are the engine's process roles; run is all's earlier name.
var roles = []role{
	{name: "serve", summary: "serve HTTP: the API, the run-history pages, monitoring, OAuth installs, webhooks, /healthz, /readyz and /metrics", front: true, httpAddr: "127.0.0.1:8080"},
	{name: "worker", summary: "run the poll and chain queues and route webhook events (any number of workers)", engine: engine.RoleWorker},
	{name: "scheduler", summary: "enqueue the polls that are due (any number of schedulers)", engine: engine.RoleScheduler},
	{name: "all", summary: "serve, worker and scheduler in one process", engine: engine.AllRoles, front: true, httpAddr: "127.0.0.1:8080"},
	{name: "run", summary: "the same as all", engine: engine.AllRoles, front: true, httpAddr: "127.0.0.1:8080"},
}

// roleDetails is the help every role shares.
const roleDetails = `Every flag may also come from the environment, as GHLFLOW_ and the flag's name in
capitals with - as _ (GHLFLOW_POLL_CONCURRENCY), or from the YAML file of --config
(keys are the flag names). The command line wins over the environment, the
environment over the file. --redis also reads REDIS_URL.

The recipes are linted first, against every connection (the file and the store):
the process does not start on an error.`

// engineOptions are the flags of the engine's roles.
type engineOptions struct {
	config                                        string
	recipes                                       multiFlag
	redisURL, connFile, httpAddr, baseURL, prefix string
	metricsAddr, logFormat                        string
	devKeyFile, redirect, hookKey                 string
	pollN, chainN                                 int
	retention, tick, every                        time.Duration
	everySet, dev, noLimit, verbose               bool
	monitoringWrite                               bool
	sharePolls                                    bool
	cpuProfile                                    string
}

// roleCommands are the commands of the roles.
func roleCommands() []*command {
	cmds := make([]*command, len(roles))
	for i, r := range roles {
		cmds[i] = roleCommand(r)
	}
	return cmds
}

// roleCommand is the command of role r.
func roleCommand(r role) *command {
	return &command{name: r.name, summary: r.summary, details: roleDetails,
		setup: func(fs *flag.FlagSet) runFunc {
			var o engineOptions
			engineFlags(fs, r, &o)
			return func(ctx context.Context, args []string) int {
				if len(args) > 0 {
					fmt.Fprintf(os.Stderr, "ghlflow %s: unexpected argument %q (recipes go in --recipes)\n", r.name, args[0])
					return 2
				}
				if o.config == "" {
					o.config = os.Getenv(config.EnvName("config"))
				}
				if err := config.Apply(fs, config.Source{File: o.config, Aliases: configAliases}); err != nil {
					fmt.Fprintf(os.Stderr, "ghlflow %s: %v\n", r.name, err)
					return 2
				}
				o.everySet = o.every != 0 || isSet(fs, "every")
				return runRole(ctx, r, &o)
			}
		}}
}

// engineFlags registers the flags of role r on fs, into o.
func engineFlags(fs *flag.FlagSet, r role, o *engineOptions) {
	fs.StringVar(&o.config, "config", "", "YAML file of settings, keyed by flag name (env "+config.EnvName("config")+")")
	fs.Var(&o.recipes, "recipes", "recipe file or folder (repeatable; "+config.EnvName("recipes")+" separates them with commas)")
	redisFlag(fs, &o.redisURL)
	fs.StringVar(&o.connFile, "connections", "", "static connections file (YAML)")
	fs.StringVar(&o.httpAddr, "http", r.httpAddr, "HTTP address (\"\" = off) of /healthz, /readyz and /metrics"+frontHelp(r))
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics on this address alone instead of on --http")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
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
	fs.StringVar(&o.hookKey, "ghl-webhook-key", "", "PEM file of the public key(s) HighLevel signs webhooks with (default: its published legacy RSA key only; env GHLFLOW_GHL_WEBHOOK_KEY_FILE too)")
	fs.BoolVar(&o.sharePolls, "share-polls", false, "polls of one connection sending the same request in the same slot share one API call")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	fs.BoolVar(&o.verbose, "v", false, "a line per poll at info level, and debug logs")
	if r.front {
		fs.BoolVar(&o.monitoringWrite, "monitoring-write", false, "let /monitoring delete, archive and run tasks (read-only by default)")
	}
}

func frontHelp(r role) string {
	if r.front {
		return ", /monitoring and /oauth/"
	}
	return ""
}

func isSet(fs *flag.FlagSet, name string) (set bool) {
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// configAliases are environment variables read after a flag's GHLFLOW_ one.
var configAliases = map[string][]string{"redis": {"REDIS_URL"}, "ghl-webhook-key": {"GHLFLOW_GHL_WEBHOOK_KEY_FILE"}}

// roleEnvironment are the environment variables the roles read besides the
// GHLFLOW_ ones of their flags: secrets and the OAuth client, which have no
// flags, and the Redis address of the other commands.
var roleEnvironment = []string{"REDIS_URL", "REDIS_ADDR", "GHLFLOW_GHL_WEBHOOK_KEY_FILE", EnvAdminToken, auth.EnvSecretKey, auth.EnvSecretKeyFile,
	auth.EnvGHLClientID, auth.EnvGHLClientSecret}

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

// usageError is a mistake of the command line, the configuration or the
// setup (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// runRole runs role r with o until ctx is done.
func runRole(ctx context.Context, r role, o *engineOptions) int {
	// Output to a closed pipe (ghlflow run | head) must not kill the
	// engine before it leaves asynq's server and worker sets: writes then
	// fail with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "ghlflow %s: %v\n", r.name, err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	if len(o.recipes) == 0 {
		return fail(usageError{errors.New("--recipes is required")})
	}
	if err := checkEvery(o.every, o.everySet); err != nil {
		return fail(usageError{err})
	}
	log, err := newLogger(os.Stderr, o.logFormat, o.verbose)
	if err != nil {
		return fail(usageError{err})
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return fail(err)
		}
		defer stop()
	}
	slog.SetDefault(log)
	if o.everySet && o.every < catalog.MinEvery {
		log.Warn("test setting: every subscription polls every "+o.every.String()+", faster than recipes may ask (1m to 15m); not for real APIs", "every", o.every)
	}
	p, err := openProcess(ctx, o, log)
	if err != nil {
		return fail(err)
	}
	defer p.close()
	if !lintBeforeRun(r.name, p.cat, o.recipes, p.known, log) {
		return 1
	}
	if err := p.newEngine(o); err != nil {
		return fail(err)
	}
	if r.front {
		warnScopes(log, p.cat, p.eng, p.known)
	}
	if err := p.serveHTTP(ctx, r, o); err != nil {
		return fail(err)
	}
	if err := p.eng.RunRoles(ctx, r.engine); err != nil {
		return fail(err)
	}
	return 0
}

// process is what a role's process holds while it runs.
type process struct {
	log     *slog.Logger
	cat     *catalog.Catalog
	redis   *redisconn.Options
	rdb     redis.UniversalClient
	store   *auth.Store // nil without a secret key and nothing sealed
	static  *auth.Static
	known   []auth.Connection
	oauth   map[string]*auth.OAuthApp
	metrics *engine.Metrics
	hooks   *webhook.Metrics
	eng     *engine.Engine
	// redirect is the OAuth redirect URL.
	redirect string
	closers  []func()
}

func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// openProcess connects to Redis and opens the connections.
func openProcess(ctx context.Context, o *engineOptions, log *slog.Logger) (*process, error) {
	p := &process{log: log, metrics: engine.NewMetrics()}
	var err error
	if p.cat, err = catalog.Default(); err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	if p.redis, err = parseRedis(o.redisURL); err != nil {
		return nil, usageError{err}
	}
	p.rdb = p.redis.Client()
	p.closers = append(p.closers, func() { _ = p.rdb.Close() })
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

// openConnections reads the static connections file, then the sealed
// store in Redis (OAuth installs, `ghlflow connect`).
func (p *process) openConnections(ctx context.Context, o *engineOptions) error {
	if n, err := auth.MoveLegacyKeys(ctx, p.rdb, o.prefix); err != nil {
		return err
	} else if n > 0 {
		p.log.Info("connections moved to their current keys", "connections", n)
	}
	p.redirect = o.redirect
	if p.redirect == "" && o.httpAddr != "" {
		p.redirect = "http://" + o.httpAddr + "/oauth/callback"
	}
	var err error
	if p.oauth, err = auth.OAuthFromEnv(p.cat, o.baseURL, p.redirect); err != nil {
		return fmt.Errorf("OAuth client: %w", err)
	}
	if o.connFile != "" {
		if p.static, err = auth.LoadStaticConnections(o.connFile); err != nil {
			return err
		}
		p.known = append(p.known, p.static.List()...)
	}
	stored, err := auth.ListConnections(ctx, p.rdb, o.prefix)
	if err != nil {
		return fmt.Errorf("list stored connections: %w", err)
	}
	p.known = append(p.known, stored...)
	p.store, err = p.openStore(o, len(stored) > 0)
	return err
}

// openStore opens the sealed connection store. Without a secret key it
// returns nil when nothing needs one: no stored connection to open and no
// OAuth client to install new ones with.
func (p *process) openStore(o *engineOptions, haveStored bool) (*auth.Store, error) {
	keys, err := auth.LoadKeyring(auth.KeyConfig{Dev: o.dev, DevFile: o.devKeyFile, Logger: p.log})
	if errors.Is(err, auth.ErrNoKey) {
		if !haveStored && len(p.oauth) == 0 {
			p.log.Debug("no secret key and nothing sealed: running with the static connections only")
			return nil, nil
		}
		why := "the connection store in Redis holds sealed connections"
		if !haveStored {
			why = "an OAuth client is configured, whose installs are sealed"
		}
		return nil, usageError{fmt.Errorf("no secret key, and %s: set %s (make one with 'ghlflow connect keygen') or %s, "+
			"or pass --dev to try ghlflow with a generated development key", why, auth.EnvSecretKey, auth.EnvSecretKeyFile)}
	}
	if err != nil {
		return nil, err
	}
	return auth.NewStore(auth.StoreConfig{Redis: p.rdb, Prefix: o.prefix, Keys: keys, OAuth: p.oauth, Logger: p.log,
		OnRefresh: p.metrics.ObserveRefresh})
}

// newEngine builds the engine on the process's connections.
func (p *process) newEngine(o *engineOptions) error {
	src := auth.Multi{}
	if p.static != nil {
		src = append(src, p.static)
	}
	if p.store != nil {
		src = append(src, p.store)
	}
	var budget engine.Budget
	tcfg := transport.Config{Catalog: p.cat, Connections: src, BaseURL: o.baseURL, Logger: p.log, Observer: p.metrics}
	if !o.noLimit {
		limiter := ratelimit.New(ratelimit.Config{Redis: p.rdb, Prefix: o.prefix, Catalog: p.cat, Logger: p.log})
		tcfg.Limiter = limiter
		budget = &engine.LimiterBudget{Limiter: limiter, Connections: src}
	}
	tr := transport.New(tcfg)
	if p.store != nil {
		p.store.UseExchanger(tr)
	}
	p.hooks = webhook.NewMetrics(p.metrics.Registry, p.cat.WebhookEvents())
	var err error
	p.eng, err = engine.New(engine.Config{Catalog: p.cat, Caller: tr, Redis: p.rdb, Recipes: o.recipes, Prefix: o.prefix,
		PollConcurrency: o.pollN, ChainConcurrency: o.chainN, Retention: o.retention, TickEvery: o.tick, Every: o.every, Logger: p.log,
		Budget: budget, Connections: src, Metrics: p.metrics, OnChain: p.onChain, SharePolls: o.sharePolls, LogPolls: o.verbose,
		Locations: engine.ConnectionLocations{Static: p.static, Store: p.store}, WebhookMetrics: p.hooks, Installs: p.store})
	return err
}

// onChain counts a chain run and logs it. The engine logs a chain's final
// failure with its reason, once; the tries before it are debug lines.
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
// every role, and the front of serve and all: the API, the pages,
// /monitoring, OAuth installs and the webhook receiver. /metrics on --http
// takes an operator key; on --metrics-addr it is open.
func (p *process) serveHTTP(ctx context.Context, r role, o *engineOptions) error {
	keys := apikey.New(p.rdb, o.prefix, os.Getenv(EnvAdminToken))
	metrics := operatorOnly(keys, promhttp.HandlerFor(p.metrics.Registry, promhttp.HandlerOpts{}))
	if o.metricsAddr != "" {
		open := engine.Probes(p.rdb, nil, promhttp.HandlerFor(p.metrics.Registry, promhttp.HandlerOpts{}))
		if err := p.listen(o.metricsAddr, open); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		p.log.Info("metrics", "url", "http://"+o.metricsAddr+"/metrics")
		metrics = nil
	}
	if o.httpAddr == "" {
		return nil
	}
	mux := engine.Probes(p.rdb, p.eng.Ready, metrics)
	if r.front {
		front, err := p.front(ctx, o)
		if err != nil {
			return err
		}
		mux.Handle("/", front)
		p.log.Info("http", "pages", "http://"+o.httpAddr+"/", "api", "http://"+o.httpAddr+"/api/v1/",
			"monitoring", "http://"+o.httpAddr+"/monitoring/")
	}
	if err := p.listen(o.httpAddr, mux); err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	return nil
}

// front is the HTTP front of serve and all: the API, the pages and
// /monitoring behind keys, OAuth installs and the webhook receiver.
func (p *process) front(ctx context.Context, o *engineOptions) (http.Handler, error) {
	hookKeys, err := webhookKeys(p.log, o.hookKey)
	if err != nil {
		return nil, err
	}
	receiver := &webhook.Handler{Keys: hookKeys, Store: webhook.NewStore(p.rdb, o.prefix), Metrics: p.hooks, Logger: p.log}
	base, closeBase := engine.Handler(p.rdb, p.redis.Asynq(), nil, engine.Mount{Pattern: engine.WebhookPath, Handler: receiver})
	mon, closeMon := engine.Monitoring(p.redis.Asynq(), o.monitoringWrite)
	p.closers = append(p.closers, func() { _ = closeBase(); _ = closeMon() })
	oauth := len(p.oauth) > 0 && p.store != nil
	if oauth {
		p.log.Info("oauth install", "start", "http://"+o.httpAddr+"/oauth/start?app=ghl&name=NAME&scopes=...", "redirect", p.redirect)
	}
	var static []auth.Connection
	if p.static != nil {
		static = p.static.List()
	}
	return siteHandler(ctx, p.log, siteConfig{rdb: p.rdb, prefix: o.prefix, cat: p.cat, eng: p.eng, store: p.store, static: static,
		recipes: o.recipes, oauth: oauth, engineHTTP: base, monitoring: mon}), nil
}

// operatorOnly serves h to requests with an operator key (Authorization:
// Bearer KEY); Prometheus sends one with its authorization setting.
func operatorOnly(keys *apikey.Store, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "an operator key is required (Authorization: Bearer KEY)", http.StatusUnauthorized)
			return
		}
		k, err := keys.Lookup(r.Context(), secret)
		if err != nil {
			http.Error(w, "an operator key is required", http.StatusUnauthorized)
			return
		}
		if !k.Operator() {
			http.Error(w, "an operator key is required", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// listen serves h on addr until the process closes.
func (p *process) listen(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	p.closers = append(p.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	return nil
}

// lintBeforeRun checks the recipes as 'ghlflow recipe lint' does, against
// every connection there is: the engine starts only when there is no
// error. Warnings are logged.
func lintBeforeRun(cmd string, cat *catalog.Catalog, paths []string, conns []auth.Connection, log *slog.Logger) bool {
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
		fmt.Fprintf(os.Stderr, "ghlflow %s: %d problem(s) in the recipes; 'ghlflow recipe lint' checks them without starting\n", cmd, len(es))
	} else {
		fmt.Fprintf(os.Stderr, "ghlflow %s: %v\n", cmd, err)
	}
	return false
}

// warnScopes logs every recipe step whose connection lacks the scope it
// needs (the call would be refused with a 403).
func warnScopes(log *slog.Logger, cat *catalog.Catalog, eng *engine.Engine, conns []auth.Connection) {
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

// startCPUProfile profiles the process into path until the returned stop
// is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
