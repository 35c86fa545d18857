package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// created is one contact the bench made in the simulator.
type created struct {
	ID, Location string
	At           time.Time
}

// churn creates contacts at cfg.Churn per second, round robin over the
// locations, until ctx is done. A create refused by an injected fault is
// tried again.
type churn struct {
	mu    sync.Mutex
	items []created
	fails int
	wg    sync.WaitGroup
}

func (c *churn) run(ctx context.Context, e *env) {
	hc := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / e.cfg.Churn))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			c.wg.Wait()
			return
		case <-tick.C:
		}
		loc := e.sim.locs[n%len(e.sim.locs)]
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for range 10 {
				if it, err := createContact(hc, e.sim.url, loc, n); err == nil {
					c.mu.Lock()
					c.items = append(c.items, it)
					c.mu.Unlock()
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			c.mu.Lock()
			c.fails++
			c.mu.Unlock()
		}()
	}
}

func (c *churn) list() []created {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]created(nil), c.items...)
}

// createContact creates a contact through the simulator's GHL API.
func createContact(hc *http.Client, base string, loc simLocation, n int) (created, error) {
	body, _ := json.Marshal(map[string]any{"firstName": fmt.Sprintf("Bench%d", n), "locationId": loc.ID,
		"email": fmt.Sprintf("bench%d-%d@example.com", n, time.Now().UnixNano())})
	req, err := http.NewRequest(http.MethodPost, base+"/contacts/", bytes.NewReader(body))
	if err != nil {
		return created{}, err
	}
	req.Header.Set("Authorization", "Bearer "+loc.Token)
	req.Header.Set("Version", "2021-07-28")
	req.Header.Set("Content-Type", "application/json")
	at := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return created{}, err
	}
	defer resp.Body.Close()
	var out struct {
		Contact struct {
			ID string `json:"id"`
		} `json:"contact"`
	}
	if resp.StatusCode/100 != 2 {
		return created{}, fmt.Errorf("create contact: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Contact.ID == "" {
		return created{}, fmt.Errorf("create contact: no id (%v)", err)
	}
	return created{ID: out.Contact.ID, Location: loc.ID, At: at}, nil
}

// sample is the state of the processes at one moment.
type sample struct {
	At         time.Time
	EngineCPU  int64 // clock ticks, all workers
	SimCPU     int64
	RedisCPU   float64 // seconds, summed over Redis restarts
	SearchReqs int64
	Writes     int64
	// Commands counts Redis's calls by command (INFO commandstats).
	Commands map[string]int64
}

// sampler reads the CPU of every process and the simulator's counters
// once a second.
type sampler struct {
	mu        sync.Mutex
	samples   []sample
	maxRSS    map[string]int64
	redisBase float64 // CPU of Redis's earlier incarnations
	redisLast float64
}

func (s *sampler) take(ctx context.Context, e *env) sample {
	sm := sample{At: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxRSS == nil {
		s.maxRSS = map[string]int64{}
	}
	for _, w := range e.engines {
		sm.EngineCPU += w.cpuTicks()
		s.maxRSS["engine"] = max(s.maxRSS["engine"], procRSS(w.pid()))
		s.maxRSS["heap"] = max(s.maxRSS["heap"], w.heapInUse(ctx))
	}
	sm.SimCPU = e.sim.cpuTicks()
	s.maxRSS["sim"] = max(s.maxRSS["sim"], procRSS(e.sim.pid()))
	if r := e.redisCPU(ctx); r > 0 {
		if r < s.redisLast {
			s.redisBase += s.redisLast
		}
		s.redisLast = r
	}
	sm.RedisCPU = s.redisBase + s.redisLast
	sm.Commands = e.redisCommands(ctx)
	s.maxRSS["redis"] = max(s.maxRSS["redis"], procRSS(e.redis.pid()))
	if n := len(s.samples); n > 0 {
		sm.SearchReqs, sm.Writes = s.samples[n-1].SearchReqs, s.samples[n-1].Writes
	}
	st, err := e.simStats(ctx)
	if err == nil {
		sm.SearchReqs = st.ops(searchOp)
		sm.Writes = st.ops(noteOp)
	}
	s.samples = append(s.samples, sm)
	return sm
}

// chaos kills a random worker every cfg.killEvery and restarts it, fires
// a 429 burst every other kill, and restarts Redis once half way.
func chaos(ctx context.Context, e *env, kills *int, progress func(string)) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	t := time.NewTicker(e.cfg.killEvery)
	defer t.Stop()
	half := time.Now().Add(e.cfg.Duration / 2)
	restarted := false
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w := e.workers[rng.IntN(len(e.workers))]
		w.kill(syscall.SIGKILL, 2*time.Second)
		*kills++
		if err := w.start(); err != nil {
			progress("restart " + w.name + ": " + err.Error())
		}
		if n%2 == 1 {
			_ = e.setFaults(ctx, e.cfg.faults+",429=30")
		}
		if !restarted && time.Now().After(half) {
			restarted = true
			e.redis.kill(syscall.SIGTERM, 10*time.Second)
			if err := e.redis.restart(ctx); err != nil {
				progress("restart redis: " + err.Error())
			}
		}
	}
}
