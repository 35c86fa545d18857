package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/history"
)

// Report is what one bench run measured. Times are in milliseconds, CPU
// in CPU-milliseconds per poll, sizes in bytes.
type Report struct {
	Scenario      string  `json:"scenario"`
	Tenants       int     `json:"tenants"`
	Recipes       int     `json:"recipes"`
	Subscriptions int     `json:"subscriptions"`
	EverySec      float64 `json:"every_s"`
	DurationSec   float64 `json:"duration_s"`
	Workers       int     `json:"workers"`
	ChurnPerSec   float64 `json:"churn_per_s"`
	SharePolls    bool    `json:"share_polls"`

	PollsDemanded float64 `json:"polls_demanded_per_s"`
	PollsServed   float64 `json:"polls_served_per_s"`
	Polls         int     `json:"polls"`
	PollErrors    int     `json:"poll_errors"`
	SkippedSlots  int     `json:"skipped_slots"`
	// Stretches counts the subscriptions' stretch records (a stretched
	// interval planned for the API budget) over the whole run.
	Stretches int     `json:"stretches"`
	LagP50Ms  float64 `json:"lag_p50_ms"`
	LagP99Ms  float64 `json:"lag_p99_ms"`
	LagMaxMs  float64 `json:"lag_max_ms"`

	EngineCPUms float64 `json:"engine_cpu_ms_per_poll"`
	RedisCPUms  float64 `json:"redis_cpu_ms_per_poll"`
	SimCPUms    float64 `json:"sim_cpu_ms_per_poll"`
	// RedisCommands is Redis commands per poll (chains included), and
	// RedisTop the commands sent most, per poll.
	RedisCommands float64            `json:"redis_commands_per_poll"`
	RedisTop      map[string]float64 `json:"redis_top_commands_per_poll"`

	EngineRSS        int64   `json:"engine_rss_bytes"`
	EngineRSSPerSub  float64 `json:"engine_rss_per_sub_bytes"`
	EngineHeap       int64   `json:"engine_heap_inuse_bytes"`
	EngineHeapPerSub float64 `json:"engine_heap_per_sub_bytes"`
	RedisRSS         int64   `json:"redis_rss_bytes"`
	SimRSS           int64   `json:"sim_rss_bytes"`
	RedisUsedMemory  int64   `json:"redis_used_memory_bytes"`
	RedisBytesPerSub float64 `json:"redis_bytes_per_sub"`

	RequestsPerPoll float64          `json:"ghl_requests_per_poll"`
	TooMany         int64            `json:"http_429s"`
	Faults          map[string]int64 `json:"sim_faults,omitempty"`

	ItemsCreated     int     `json:"items_created"`
	CreateFailures   int     `json:"create_failures"`
	ActionsExpected  int     `json:"actions_expected"`
	Actions          int     `json:"actions"`
	ActionP50Ms      float64 `json:"action_latency_p50_ms"`
	ActionP99Ms      float64 `json:"action_latency_p99_ms"`
	Lost             int     `json:"lost"`
	DuplicateActions int     `json:"duplicate_actions"`
	ChainTasks       int     `json:"completed_chain_tasks"`
	DuplicateChains  int     `json:"duplicate_chain_runs"`
	UnfinishedChains int     `json:"unfinished_chain_tasks"`

	Kills         int `json:"worker_kills"`
	RedisRestarts int `json:"redis_restarts"`

	Series []Point     `json:"series"`
	Steps  []ScaleStep `json:"scale_steps,omitempty"`
	Held   bool        `json:"scale_held,omitempty"`
}

// Point is one bucket of the run's time series.
type Point struct {
	T        float64 `json:"t_s"`
	Served   float64 `json:"polls_per_s"`
	LagP99Ms float64 `json:"lag_p99_ms"`
	LagMaxMs float64 `json:"lag_max_ms"`
}

// ScaleStep is one load the scale scenario tried.
type ScaleStep struct {
	Subscriptions int     `json:"subscriptions"`
	PollsDemanded float64 `json:"polls_demanded_per_s"`
	PollsServed   float64 `json:"polls_served_per_s"`
	LagP99Ms      float64 `json:"lag_p99_ms"`
	EngineCPUms   float64 `json:"engine_cpu_ms_per_poll"`
}

// polled is one poll read back from the history, with its lag.
type polled struct {
	At  time.Time
	Lag time.Duration
}

// report computes the figures of the window first..last.
func (e *env) report(ctx context.Context, first, last sample, smp *sampler, items []created, notes map[string][]time.Time) (*Report, error) {
	cfg := e.cfg
	r := &Report{Scenario: cfg.Scenario, Tenants: cfg.Tenants, Recipes: cfg.Recipes, Subscriptions: e.subs,
		EverySec: cfg.Every.Seconds(), DurationSec: last.At.Sub(first.At).Seconds(), Workers: cfg.Workers,
		ChurnPerSec: cfg.Churn, SharePolls: cfg.SharePolls, PollsDemanded: float64(e.subs) / cfg.Every.Seconds()}
	polls, err := e.readPolls(ctx, r, first.At, last.At)
	if err != nil {
		return nil, err
	}
	r.Polls = len(polls)
	r.PollsServed = float64(len(polls)) / r.DurationSec
	lags := make([]float64, len(polls))
	for i, p := range polls {
		lags[i] = ms(p.Lag)
	}
	r.LagP50Ms, r.LagP99Ms, r.LagMaxMs = quantile(lags, 0.5), quantile(lags, 0.99), quantile(lags, 1)
	r.Series = series(polls, first.At, last.At)
	if n := float64(len(polls)); n > 0 {
		r.EngineCPUms = float64(last.EngineCPU-first.EngineCPU) * 1000 / clockTick / n
		r.SimCPUms = float64(last.SimCPU-first.SimCPU) * 1000 / clockTick / n
		r.RedisCPUms = (last.RedisCPU - first.RedisCPU) * 1000 / n
		r.RequestsPerPoll = float64(last.SearchReqs-first.SearchReqs) / n
		r.RedisCommands, r.RedisTop = commandsPerPoll(first.Commands, last.Commands, n)
	}
	smp.mu.Lock()
	r.EngineRSS, r.RedisRSS, r.SimRSS = smp.maxRSS["engine"], smp.maxRSS["redis"], smp.maxRSS["sim"]
	r.EngineHeap = smp.maxRSS["heap"]
	r.EngineHeapPerSub = float64(r.EngineHeap) / float64(e.subs)
	smp.mu.Unlock()
	r.EngineRSSPerSub = float64(r.EngineRSS) / float64(e.subs)
	if st, err := e.simStats(ctx); err == nil {
		r.TooMany, r.Faults = st.TooManyRequests, st.Faults
	}
	e.actions(r, items, notes)
	if err := e.chainTasks(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// readPolls reads every subscription's poll history and returns the polls
// that started in [from, to], counting errors, skipped slots and stretches.
func (e *env) readPolls(ctx context.Context, r *Report, from, to time.Time) ([]polled, error) {
	keys, err := e.scan(ctx, prefix+"{sub:*}:hist:polls")
	if err != nil {
		return nil, fmt.Errorf("bench: history: %w", err)
	}
	var out []polled
	for len(keys) > 0 {
		batch := keys[:min(500, len(keys))]
		keys = keys[len(batch):]
		pipe := e.rdb.Pipeline()
		cmds := make([]interface{ Val() []string }, len(batch))
		for i, k := range batch {
			cmds[i] = pipe.LRange(ctx, k, 0, -1)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("bench: history: %w", err)
		}
		for i := range batch {
			for _, raw := range cmds[i].Val() {
				var p history.Poll
				if json.Unmarshal([]byte(raw), &p) != nil {
					continue
				}
				if p.Stretch > 1 {
					r.Stretches++ // planned at any time of the run
				}
				if p.Stretch != 0 || p.Time.Before(from) || p.Time.After(to) {
					continue
				}
				switch {
				case p.Skipped != "":
					r.SkippedSlots++
					continue
				case p.Error != "":
					r.PollErrors++
				}
				out = append(out, polled{At: p.Time, Lag: p.Lag})
			}
		}
	}
	return out, nil
}

// actions compares the notes received with the items created: each item
// wants one note per recipe.
func (e *env) actions(r *Report, items []created, notes map[string][]time.Time) {
	r.ItemsCreated = len(items)
	r.ActionsExpected = len(items) * e.cfg.Recipes
	var lat []float64
	for _, it := range items {
		for i := range e.cfg.Recipes {
			ts := notes[recipeName(i)+" "+it.ID]
			if len(ts) == 0 {
				r.Lost++
				continue
			}
			r.Actions++
			r.DuplicateActions += len(ts) - 1
			first := ts[0]
			for _, t := range ts[1:] {
				if t.Before(first) {
					first = t
				}
			}
			lat = append(lat, ms(max(first.Sub(it.At), 0)))
		}
	}
	r.ActionP50Ms, r.ActionP99Ms = quantile(lat, 0.5), quantile(lat, 0.99)
}

// chainTasks counts the completed chain tasks and those completed twice
// for one subscription and item.
func (e *env) chainTasks(ctx context.Context, r *Report) error {
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	q := engine.QueueName(prefix, engine.QueueChain)
	seen := map[string]int{}
	for page := 1; ; page++ {
		tasks, err := insp.ListCompletedTasks(q, asynq.PageSize(1000), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bench: chain tasks: %w", err)
		}
		for _, ti := range tasks {
			var pl engine.ChainPayload
			if json.Unmarshal(ti.Payload, &pl) == nil {
				seen[pl.Sub+" "+pl.ItemKey]++
			}
		}
		if len(tasks) < 1000 {
			break
		}
	}
	r.ChainTasks = len(seen)
	for _, n := range seen {
		r.DuplicateChains += n - 1
	}
	if qi, err := insp.GetQueueInfo(q); err == nil {
		r.UnfinishedChains = qi.Pending + qi.Active + qi.Scheduled + qi.Retry + qi.Archived
	}
	return nil
}

// series buckets the polls over the window: polls per second and lag.
func series(polls []polled, from, to time.Time) []Point {
	span := to.Sub(from)
	bucket := max(time.Second, span/60)
	n := int(span/bucket) + 1
	lags := make([][]float64, n)
	for _, p := range polls {
		i := int(p.At.Sub(from) / bucket)
		if i >= 0 && i < n {
			lags[i] = append(lags[i], ms(p.Lag))
		}
	}
	out := make([]Point, 0, n)
	for i, l := range lags {
		width := bucket.Seconds()
		if i == n-1 {
			width = (span - time.Duration(i)*bucket).Seconds()
			if width < 0.5 {
				continue
			}
		}
		out = append(out, Point{T: float64(i) * bucket.Seconds(), Served: float64(len(l)) / width,
			LagP99Ms: quantile(l, 0.99), LagMaxMs: quantile(l, 1)})
	}
	return out
}

// commandsPerPoll returns Redis commands per poll between two counts, and
// the eight commands sent most.
func commandsPerPoll(first, last map[string]int64, polls float64) (float64, map[string]float64) {
	type kv struct {
		k string
		n int64
	}
	var all []kv
	var total int64
	for k, v := range last {
		if d := v - first[k]; d > 0 && k != "info" {
			all = append(all, kv{k, d})
			total += d
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	top := map[string]float64{}
	for _, x := range all[:min(8, len(all))] {
		top[x.k] = float64(x.n) / polls
	}
	return float64(total) / polls, top
}

// quantile returns the q quantile of xs (nearest rank; 0 when empty).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
