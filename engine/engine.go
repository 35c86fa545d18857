package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/engine/echo"
	"github.com/ghlflow/ghlflow/engine/history"
	rdbkeys "github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/recipestore"
	"github.com/ghlflow/ghlflow/engine/scheduler"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/webhook"
)

// Config sets up an Engine. Catalog, Caller, Redis and Recipes are required.
type Config struct {
	Catalog *catalog.Catalog
	// Caller performs the catalog operations of polls and chains
	// (engine/transport implements it). It is actions.Caller; triggers
	// declares the same method as triggers.Caller, since triggers and
	// actions do not import each other.
	Caller actions.Caller
	// Redis is the client our own keys and asynq share.
	Redis redis.UniversalClient
	// Recipes are the recipe files or folders; they are watched for changes.
	Recipes []string
	// Prefix goes before our Redis keys (default DefaultPrefix).
	Prefix string
	// PollConcurrency and ChainConcurrency size the workers (defaults 8 and
	// 16); Priorities weights the queues poll and chain (default 3 each),
	// named without the prefix that QueueName adds.
	PollConcurrency, ChainConcurrency int
	Priorities                        map[string]int
	// Retention keeps a completed chain task's id (default 24 h).
	Retention time.Duration
	// ShutdownTimeout lets in-flight tasks finish (default 20 s); tasks still
	// running then go back to their queue.
	ShutdownTimeout time.Duration
	// TickEvery is the scheduler's tick (default 1 s).
	TickEvery time.Duration
	// SummaryEvery is how often a summary line (polls, new items, chains,
	// errors) is logged at info level (default 1 min).
	SummaryEvery time.Duration
	// LogPolls logs every poll at info level (what it read, found new and
	// asked the API); otherwise at debug level.
	LogPolls bool
	// Every, when set, replaces every recipe's poll interval (tests and
	// demos that cannot wait a minute per poll).
	Every time.Duration
	// OnChain is called after each chain run.
	OnChain func(ChainResult)
	// Budget, when set, stretches the polls of connections whose daily
	// API budget runs low; when it is also a Planner, the schedule is
	// stretched for the burst budget too, every PlanEvery (default 5 s).
	Budget    Budget
	PlanEvery time.Duration
	// SaturationEvery is how often, at most, the engine warns that its
	// workers do not keep up (default 1 min).
	SaturationEvery time.Duration
	// Metrics, when set, receives the poll counts.
	Metrics *Metrics
	// Locations, when set, turns instant recipes on: the engine routes the
	// webhook events engine/webhook stored in Redis to them (see Router).
	Locations Locations
	// WebhookMetrics counts routed events and the webhook to chain start
	// latency (optional).
	WebhookMetrics *webhook.Metrics
	// Installs, when set with Locations, is the connection store the app's
	// INSTALL and UNINSTALL events make and delete tenants' connections in
	// (see Lifecycle).
	Installs *auth.Store
	// Connections, when set, tells templates what a connection stands for
	// (.connection.location_id, .connection.company_id).
	Connections ConnectionLookup
	// TenantChains caps the chains of one tenant in flight in a process
	// (default a quarter of ChainConcurrency, at least 1; negative: no
	// cap), so one tenant's burst does not hold back the others' chains.
	TenantChains int
	// TenantPolls caps the polls of one tenant in flight in a process
	// (default a quarter of PollConcurrency, at least 1; negative: no cap);
	// with SharePolls it caps the tenant's API calls in flight, so polls
	// reading a shared page are not counted.
	TenantPolls int
	// SharePolls lets the polls of one connection that send the same
	// request in the same slot share one API call (see SharedPages).
	SharePolls bool
	// TenantRefresh is how often the engine looks for changed tenants
	// (default 2 s).
	TenantRefresh time.Duration
	Logger        *slog.Logger
	// EchoWindow is how long the fingerprint of a step's write waits for
	// its echo (engine/echo; echo.DefaultWindow when 0).
	EchoWindow time.Duration
}

// Engine runs recipes: the scheduler, the poll and chain workers and the
// subscription registry.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	reg    *Registry
	pauses *Pauses
	sched  *scheduler.Scheduler
	client *asynq.Client
	// inspector reads the poll queue (poll states, saturation figures).
	inspector *asynq.Inspector
	// served counts the poll tasks the workers ran.
	served  atomic.Int64
	History *history.Store
	Chainer *Chainer
	Poller  *Poller
	// Router routes webhook events to instant recipes (nil without
	// Config.Locations).
	Router *Router
	stats  *Stats

	tenants       *tenant.Store
	tmu           sync.Mutex // guards recipes and tenantVersion
	recipes       []*catalog.Recipe
	tenantVersion int64
	stored        *recipestore.Store
	recipeVersion int64
	// roles are the roles Run started (for the saturation warning: a
	// scheduler alone serves no polls).
	roles Roles
	// ready is set once RunRoles started its roles.
	ready atomic.Bool
}

// withDefaults fills the zero fields of a Config with their documented
// defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.PollConcurrency <= 0 {
		cfg.PollConcurrency = 8
	}
	if cfg.ChainConcurrency <= 0 {
		cfg.ChainConcurrency = 16
	}
	if cfg.Priorities == nil {
		cfg.Priorities = map[string]int{QueuePoll: 3, QueueChain: 3}
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultChainRetention
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	if cfg.PlanEvery <= 0 {
		cfg.PlanEvery = DefaultPlanEvery
	}
	if cfg.SaturationEvery <= 0 {
		cfg.SaturationEvery = DefaultSaturationEvery
	}
	if cfg.SummaryEvery <= 0 {
		cfg.SummaryEvery = time.Minute
	}
	if cfg.TenantPolls == 0 {
		cfg.TenantPolls = max(1, cfg.PollConcurrency/4)
	}
	if cfg.TenantChains == 0 {
		cfg.TenantChains = max(1, cfg.ChainConcurrency/4)
	}
	if cfg.TenantRefresh <= 0 {
		cfg.TenantRefresh = 2 * time.Second
	}
	return cfg
}

// New builds an Engine and loads the recipes; a bad recipe is an error.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{cfg: cfg, log: log, reg: NewRegistry(), pauses: NewPauses(cfg.Redis, cfg.Prefix, log), stats: &Stats{},
		tenants: tenant.NewStore(cfg.Redis, cfg.Prefix), stored: recipestore.New(cfg.Redis, cfg.Prefix)}
	e.client = asynq.NewClientFromRedisClient(cfg.Redis)
	e.inspector = asynq.NewInspectorFromRedisClient(cfg.Redis)
	pollBudget := cfg.Budget
	if _, ok := cfg.Budget.(Planner); ok {
		pollBudget = nil // the schedule is stretched instead
	}
	e.History = history.New(cfg.Redis, history.Options{Prefix: cfg.Prefix})
	e.Poller = &Poller{Subs: e.reg, Caller: cfg.Caller, Dedup: dedup.New(cfg.Redis, dedup.Options{Prefix: cfg.Prefix}),
		Queue: e.client, ChainQueue: QueueName(cfg.Prefix, QueueChain), ChainRetention: cfg.Retention, ChainOptions: []asynq.Option{asynq.MaxRetry(12)},
		Recorder: e.History, Pauser: e.pauses, Budget: pollBudget, Stats: e.stats, Logger: log,
		Connections: cfg.Connections, Pace: TenantPace(cfg.Catalog), Pacer: RedisPacer{Redis: cfg.Redis, Keys: rdbkeys.NewKeys(cfg.Prefix)},
		TenantCap: max(0, cfg.TenantPolls), Metrics: cfg.Metrics, LogPolls: cfg.LogPolls,
		SubPauses: NewSubPauses(cfg.Redis, cfg.Prefix)}
	if cfg.SharePolls {
		e.Poller.Shared = NewSharedPages(cfg.Redis, cfg.Prefix)
	}
	var stepCaller actions.Caller = cfg.Caller
	if cfg.Metrics != nil {
		stepCaller = timedCaller{Caller: cfg.Caller, m: cfg.Metrics}
	}
	e.Chainer = &Chainer{Subs: e.reg, Runner: &actions.Runner{Catalog: cfg.Catalog, Caller: stepCaller}, Redis: cfg.Redis,
		Prefix: cfg.Prefix, Retention: cfg.Retention, History: e.History, Pauser: e.pauses, OnDone: cfg.OnChain, Stats: e.stats,
		Logger: log, Connections: cfg.Connections, TenantCap: max(0, cfg.TenantChains),
		Echo: &echo.Store{Redis: cfg.Redis, Prefix: cfg.Prefix, Window: cfg.EchoWindow}}
	e.Chainer.Runner.OnWrite = e.Chainer.RecordWrite
	if cfg.Locations != nil {
		e.Router = &Router{Events: webhook.NewStore(cfg.Redis, cfg.Prefix), Subs: e.reg, Poller: e.Poller,
			Locations: cfg.Locations, Metrics: cfg.WebhookMetrics, Logger: log}
		if cfg.Installs != nil {
			e.Router.Lifecycle = &Lifecycle{Tenants: e.tenants, Conns: cfg.Installs, Logger: log}
		}
		if m := cfg.WebhookMetrics; m != nil {
			e.Chainer.OnStart = func(pl ChainPayload) {
				if !pl.Received.IsZero() {
					m.ChainStart.Observe(time.Since(pl.Received).Seconds())
				}
			}
		}
	}
	e.sched = scheduler.New(cfg.Redis, &PollEnqueuer{Queue: e.client, Inspector: e.inspector, Redis: cfg.Redis, PollQueue: QueueName(cfg.Prefix, QueuePoll)},
		scheduler.Options{Prefix: cfg.Prefix, TickEvery: cfg.TickEvery, Logger: log, OnSkip: e.onSkip})
	if err := e.load(context.Background()); err != nil {
		return nil, err
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Registry.Register(newStateCollector(e)); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return e, nil
}

// Registry returns the subscriptions in force.
func (e *Engine) Registry() *Registry { return e.reg }

// Pauses returns the engine's view of the connections' pauses.
func (e *Engine) Pauses() *Pauses { return e.pauses }

// load reads the recipes and the tenants and, when they are all valid, puts
// them in force.
func (e *Engine) load(ctx context.Context) error {
	rs, recipeVersion, err := e.loadRecipes(ctx)
	if err != nil {
		return err
	}
	e.tmu.Lock()
	defer e.tmu.Unlock()
	tenants, version, err := e.tenants.List(ctx)
	if err != nil {
		return err
	}
	tenants = append([]*tenant.Tenant{defaultTenant}, tenants...)
	var subs []*Subscription
	byTenant := make(map[string][]string, len(tenants))
	for _, t := range tenants {
		ts, err := e.bind(rs, t)
		if err != nil {
			return err
		}
		subs = append(subs, ts...)
		if !t.IsDefault() {
			byTenant[t.ID] = subIDs(ts)
		}
	}
	if err := e.sched.Sync(ctx, e.entries(scheduled(subs))); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	if err := e.tenants.TrackAll(ctx, byTenant); err != nil {
		return err
	}
	added, changed, removed := e.reg.set(subs)
	e.recipes, e.tenantVersion, e.recipeVersion = rs, version, recipeVersion
	// A reload is how a fixed static connection is put back in force.
	if err := e.pauses.liftUnstored(ctx); err != nil {
		e.log.Warn("resume paused connections", "err", err)
	}
	e.log.Info("recipes loaded", "recipes", len(rs), "tenants", len(tenants)-1, "subscriptions", len(subs),
		"added", added, "changed", changed, "removed", removed)
	return nil
}

// Reload reads the recipes again; on error the running version stays.
func (e *Engine) Reload(ctx context.Context) error {
	if err := e.load(ctx); err != nil {
		e.log.Error("reload refused, the running recipes stay", "err", err)
		return err
	}
	return nil
}

// watch reloads on SIGHUP and on changes of the recipe files.
func (e *Engine) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var events chan fsnotify.Event
	w, err := fsnotify.NewWatcher()
	if err != nil {
		e.log.Warn("recipe watch", "err", err)
	} else {
		defer w.Close()
		for _, p := range e.cfg.Recipes {
			dir := p
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				dir = filepath.Dir(p)
			}
			if err := w.Add(dir); err != nil {
				e.log.Warn("recipe watch", "path", dir, "err", err)
			}
		}
		events = w.Events
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = e.Reload(ctx)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Remove|fsnotify.Rename) != 0 {
				debounce = time.After(200 * time.Millisecond)
			}
		case <-debounce:
			debounce = nil
			_ = e.Reload(ctx)
		}
	}
}

// Registry is the set of subscriptions in force; it implements
// Subscriptions. Whether a subscription's connection is paused is for
// Pauses to say.
type Registry struct {
	mu       sync.RWMutex
	subs     map[string]*Subscription
	byTenant map[string][]*Subscription
}

// NewRegistry returns a registry holding subs.
func NewRegistry(subs ...*Subscription) *Registry {
	r := &Registry{subs: map[string]*Subscription{}, byTenant: map[string][]*Subscription{}}
	r.set(subs)
	return r
}

// Get returns the subscription in force by id.
func (r *Registry) Get(id string) (*Subscription, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.subs[id]
	return s, ok
}

// All returns every subscription in force.
func (r *Registry) All() []*Subscription {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Subscription, 0, len(r.subs))
	for _, s := range r.subs {
		out = append(out, s)
	}
	return out
}

func (r *Registry) set(subs []*Subscription) (added, changed, removed int) {
	next := make(map[string]*Subscription, len(subs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range subs {
		next[s.ID] = s
		if old, ok := r.subs[s.ID]; !ok {
			added++
		} else if old.Recipe.File != s.Recipe.File || old.Every != s.Every || old.Dedup != s.Dedup ||
			len(old.Recipe.Steps) != len(s.Recipe.Steps) {
			changed++
		}
	}
	for id := range r.subs {
		if _, ok := next[id]; !ok {
			removed++
		}
	}
	r.subs = next
	r.byTenant = map[string][]*Subscription{}
	for _, s := range subs {
		r.byTenant[s.Tenant.ID] = append(r.byTenant[s.Tenant.ID], s)
	}
	return
}

// slogAdapter routes asynq's logs to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }

// Warn logs asynq's warnings, but its "Retry exhausted for task id=..."
// at debug level: the engine's error handler logs the reason of each
// final failure.
func (a slogAdapter) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.HasPrefix(msg, "Retry exhausted for task") {
		a.l.Debug(msg)
		return
	}
	a.l.Warn(msg)
}
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }

// replaceTenant puts subs in force as the subscriptions of tenant id (none:
// the tenant is gone) and returns those it had.
func (r *Registry) replaceTenant(id string, subs []*Subscription) (old []*Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.byTenant[id]
	for _, s := range old {
		delete(r.subs, s.ID)
	}
	for _, s := range subs {
		r.subs[s.ID] = s
	}
	if len(subs) == 0 {
		delete(r.byTenant, id)
	} else {
		r.byTenant[id] = subs
	}
	return old
}

// Tenant returns the subscriptions in force of tenant id.
func (r *Registry) Tenant(id string) []*Subscription {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*Subscription(nil), r.byTenant[id]...)
}

// tenantsOutside returns the tenants in force, other than the default, whose
// id is not in ids (nil ids: none).
func (r *Registry) tenantsOutside(ids []string) []string {
	if ids == nil {
		return nil
	}
	keep := make(map[string]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for id := range r.byTenant {
		if id != tenant.DefaultID && !keep[id] {
			out = append(out, id)
		}
	}
	return out
}
