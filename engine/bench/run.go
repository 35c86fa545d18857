package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// prefix is the engine's key prefix in the bench's own Redis.
const prefix = rdb.DefaultPrefix

// env is one run's processes.
type env struct {
	cfg   Config
	redis *redisProc
	rdb   *redis.Client
	sim   *simProc
	// engines are the scheduler and the workers; workers only the latter.
	engines []*proc
	workers []*proc
	subs    int
	// memBase is Redis's used_memory before the tenants were added.
	memBase int64
}

// setup starts Redis and the simulator, writes the recipes and the
// connections, adds the tenants and starts the workers.
func setup(ctx context.Context, cfg Config) (*env, error) {
	e := &env{cfg: cfg}
	var err error
	if e.redis, err = startRedis(ctx, cfg.Dir, cfg.restartRedis); err != nil {
		return nil, err
	}
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.addr, MaxRetries: 5})
	if e.sim, err = startSim(ctx, cfg.Bin, cfg.Dir, cfg.Tenants, cfg.simArgs...); err != nil {
		e.close()
		return nil, err
	}
	if err := e.writeFiles(); err != nil {
		e.close()
		return nil, err
	}
	e.memBase = e.redisInt(ctx, "memory", "used_memory")
	ts := tenant.NewStore(e.rdb, prefix)
	for i, l := range e.sim.locs {
		t := &tenant.Tenant{ID: fmt.Sprintf("t%04d", i+1), Name: fmt.Sprintf("Tenant %d", i+1),
			Connections: map[string]string{"ghl": "ghl-" + l.ID}}
		if err := ts.Put(ctx, t); err != nil {
			e.close()
			return nil, fmt.Errorf("bench: tenant %s: %w", t.ID, err)
		}
	}
	e.subs = cfg.Tenants * cfg.Recipes
	key := auth.GenerateKey()
	// One scheduler and cfg.Workers workers, each its own process.
	for i := range cfg.Workers + 1 {
		w, err := e.engineProc(i, key)
		if err == nil {
			err = w.start()
		}
		if err != nil {
			e.close()
			return nil, err
		}
		e.engines = append(e.engines, w)
		if i > 0 {
			e.workers = append(e.workers, w)
		}
	}
	return e, nil
}

// engineProc is engine process i: the scheduler (0) or worker i.
func (e *env) engineProc(i int, key string) (*proc, error) {
	cfg := e.cfg
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	role, name := "worker", fmt.Sprintf("worker-%d", i)
	if i == 0 {
		role, name = "scheduler", "scheduler"
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", port)
	w := &proc{name: name, log: filepath.Join(cfg.Dir, name+".log"),
		env: []string{auth.EnvSecretKey + "=" + key}, metrics: "http://" + httpAddr + "/metrics",
		args: []string{cfg.Bin, role, "--recipes", filepath.Join(cfg.Dir, "recipes"),
			"--connections", filepath.Join(cfg.Dir, "connections.yaml"), "--redis", "redis://" + e.redis.addr + "/0",
			"--http", "", "--metrics-addr", httpAddr, "--every", cfg.Every.String(), "--poll-concurrency", strconv.Itoa(cfg.PollConcurrency)}}
	if cfg.SharePolls {
		w.args = append(w.args, "--share-polls")
	}
	if cfg.Profile && i == 1 {
		w.args = append(w.args, "--cpuprofile", filepath.Join(cfg.Dir, "worker-1.pprof"))
	}
	return w, nil
}

// writeFiles writes the recipes and the static connections file.
func (e *env) writeFiles() error {
	dir := filepath.Join(e.cfg.Dir, "recipes")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: recipes: %w", err)
	}
	for i := range e.cfg.Recipes {
		name := recipeName(i)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(recipeYAML(name)), 0o644); err != nil {
			return fmt.Errorf("bench: recipes: %w", err)
		}
	}
	var b strings.Builder
	b.WriteString("connections:\n")
	for _, l := range e.sim.locs {
		fmt.Fprintf(&b, "  - {id: ghl-%s, app: ghl, location_id: %q, base_url: %q, token: %q}\n", l.ID, l.ID, e.sim.url, l.Token)
	}
	if err := os.WriteFile(filepath.Join(e.cfg.Dir, "connections.yaml"), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("bench: connections: %w", err)
	}
	return nil
}

func recipeName(i int) string { return fmt.Sprintf("bench-r%03d", i+1) }

// close stops every process.
func (e *env) close() {
	for _, w := range e.engines {
		w.kill(syscall.SIGTERM, 10*time.Second)
	}
	if e.sim != nil {
		e.sim.kill(syscall.SIGTERM, 5*time.Second)
	}
	if e.rdb != nil {
		e.rdb.Close()
	}
	if e.redis != nil {
		e.redis.kill(syscall.SIGTERM, 5*time.Second)
	}
}

// redisInfo returns the fields of one INFO section.
func (e *env) redisInfo(ctx context.Context, section string) map[string]string {
	out := map[string]string{}
	s, err := e.rdb.Info(ctx, section).Result()
	if err != nil {
		return out
	}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

func (e *env) redisInt(ctx context.Context, section, field string) int64 {
	n, _ := strconv.ParseInt(e.redisInfo(ctx, section)[field], 10, 64)
	return n
}

// redisCommands counts the calls of each command since Redis started.
func (e *env) redisCommands(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	for k, v := range e.redisInfo(ctx, "commandstats") {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		out[name], _ = strconv.ParseInt(calls, 10, 64)
	}
	return out
}

// redisCPU is Redis's user+system CPU in seconds since it started.
func (e *env) redisCPU(ctx context.Context) float64 {
	m := e.redisInfo(ctx, "cpu")
	u, _ := strconv.ParseFloat(m["used_cpu_user"], 64)
	s, _ := strconv.ParseFloat(m["used_cpu_sys"], 64)
	return u + s
}

// waitSeeded waits until every subscription has polled once (its first
// poll marks what exists as seen), so contacts made afterwards are new to
// all of them.
func (e *env) waitSeeded(ctx context.Context) error {
	deadline := time.Now().Add(2*e.cfg.Every + time.Duration(e.subs/200)*time.Second + 30*time.Second)
	for {
		n, err := e.countSeeded(ctx)
		if err == nil && n >= e.subs {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %d of %d subscriptions polled after the warm-up (see %s)", n, e.subs, e.cfg.Dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// countSeeded counts the subscriptions whose first poll has marked what
// existed as seen (a slot skipped is not a first poll).
func (e *env) countSeeded(ctx context.Context) (int, error) {
	keys, err := e.scan(ctx, prefix+"{sub:*}:meta")
	if err != nil {
		return 0, err
	}
	pipe := e.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGet(ctx, k, "seeded")
	}
	if len(keys) > 0 {
		_, _ = pipe.Exec(ctx)
	}
	n := 0
	for _, c := range cmds {
		if v, err := c.Result(); err == nil && v != "" && v != "0" {
			n++
		}
	}
	return n, nil
}

func (e *env) scan(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	it := e.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for it.Next(ctx) {
		out = append(out, it.Val())
	}
	return out, it.Err()
}
