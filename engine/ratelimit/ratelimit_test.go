package ratelimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func newRedis(t testing.TB) *redis.Client { return redistest.Client(t) }

func testPrefix(t testing.TB, rdb *redis.Client) string { return redistest.Prefix(t, rdb) }

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestObserveLearnsBudgetAndPauses(t *testing.T) {
	rdb := newRedis(t)
	prefix := testPrefix(t, rdb)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Catalog: cat, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st, err := l.Status(ctx, "ghl", "loc1")
	if err != nil || st.Max != 100 || st.Interval != 10*time.Second || st.DailyLimit != 200000 {
		t.Fatalf("documented budget: %+v %v", st, err)
	}
	l.Observe(ctx, "ghl", "loc1", headers("X-RateLimit-Max", "50", "X-RateLimit-Interval-Milliseconds", "5000",
		"X-RateLimit-Remaining", "49", "X-RateLimit-Limit-Daily", "1000", "X-RateLimit-Daily-Remaining", "900"))
	// Another process sees what this one learned.
	other := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Catalog: cat})
	st, err = other.Status(ctx, "ghl", "loc1")
	if err != nil || st.Max != 50 || st.Interval != 5*time.Second || st.DailyLimit != 1000 || st.DailyRemaining != 900 {
		t.Fatalf("learned budget: %+v %v", st, err)
	}
	other.Pause(ctx, "ghl", "loc1", 300*time.Millisecond)
	if st, _ = l.Status(ctx, "ghl", "loc1"); st.PausedFor <= 0 {
		t.Fatalf("pause not shared: %+v", st)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(wctx, "ghl", "loc1"); err == nil {
		t.Fatal("Wait went through a pause")
	}
	if err := l.Wait(ctx, "ghl", "loc1"); err != nil {
		t.Fatal(err)
	}
}

func TestDailyStretch(t *testing.T) {
	rdb := newRedis(t)
	prefix := testPrefix(t, rdb)
	ctx := context.Background()
	// Noon UTC: half the day left.
	noon := time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)
	l := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Now: func() time.Time { return noon },
		Budgets: map[string]catalog.RateLimit{"ghl": {Burst: 100, Interval: catalog.Duration(10 * time.Second), Daily: 1000}}})
	cases := []struct {
		limit, remaining string
		want             time.Duration
		stretched        bool
	}{
		{"1000", "900", 5 * time.Minute, false}, // plenty left
		{"1000", "400", 5 * time.Minute, false}, // below half but above the low water mark
		{"1000", "100", 25 * time.Minute, true}, // 10% left, 50% of the day: ×5
		{"1000", "0", 12 * time.Hour, true},     // spent: wait for the reset
		{"0", "0", 5 * time.Minute, false},      // a server without a daily limit
	}
	for _, tc := range cases {
		loc := "loc-" + tc.limit + "-" + tc.remaining
		l.Observe(ctx, "ghl", loc, headers("X-RateLimit-Limit-Daily", tc.limit, "X-RateLimit-Daily-Remaining", tc.remaining))
		got, reason, err := l.Stretch(ctx, "ghl", loc, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want || (reason != "") != tc.stretched {
			t.Fatalf("remaining %s: %s %q, want %s", tc.remaining, got, reason, tc.want)
		}
		st, _ := l.Status(ctx, "ghl", loc)
		if (st.Stretch > 1) != tc.stretched || (st.Reason != "") != tc.stretched {
			t.Fatalf("status for remaining %s: %+v", tc.remaining, st)
		}
	}
}

// The shared limiter test runs two more worker processes: this test binary
// again, with these variables set.
const (
	envChild  = "RATELIMIT_TEST_WORKER"
	envPrefix = "RATELIMIT_TEST_PREFIX"
	envSimURL = "RATELIMIT_TEST_SIM_URL"
	envToken  = "RATELIMIT_TEST_TOKEN"
	envUntil  = "RATELIMIT_TEST_UNTIL"
	envStart  = "RATELIMIT_TEST_START"
	callers   = 10 // goroutines per process, each calling back to back
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		start, _ := strconv.ParseInt(os.Getenv(envStart), 10, 64)
		until, _ := strconv.ParseInt(os.Getenv(envUntil), 10, 64)
		ok, limited, errs := demand(os.Getenv(envPrefix), os.Getenv(envSimURL), time.Unix(0, start), time.Unix(0, until))
		b, _ := json.Marshal(map[string]any{"ok": ok, "limited": limited, "errors": errs})
		fmt.Println("RESULT " + string(b))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// demand calls as fast as `callers` goroutines can, from start until until,
// through a limiter and transport of its own; it returns the calls that
// succeeded, those that ended rate limited, and other errors (a few).
func demand(prefix, simURL string, start, until time.Time) (ok, limited int64, errs []string) {
	rdb := redistest.Dial(callers + 4)
	defer rdb.Close()
	cat, err := catalog.Default()
	if err != nil {
		return 0, 0, []string{err.Error()}
	}
	conns, err := auth.NewStatic(auth.StaticEntry{ID: "acme", App: "ghl", LocationID: "loc-rl", TokenEnv: envToken})
	if err != nil {
		return 0, 0, []string{err.Error()}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lim := ratelimit.New(ratelimit.Config{Redis: rdb, Prefix: prefix, Catalog: cat, Logger: quiet})
	tr := transport.New(transport.Config{Catalog: cat, Connections: conns, Limiter: lim, BaseURL: simURL, Logger: quiet})
	var nOK, nLimited atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	time.Sleep(time.Until(start))
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithDeadline(context.Background(), until)
			defer cancel()
			op := cat.MustOp("ghl.contacts.list")
			for ctx.Err() == nil {
				_, err := tr.Call(ctx, "acme", op, map[string]any{"limit": 1})
				switch {
				case err == nil:
					nOK.Add(1)
				case ctx.Err() != nil:
				case transport.RetryAfter(err) > 0:
					nLimited.Add(1)
				default:
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return nOK.Load(), nLimited.Load(), errs
}

// TestSharedLimiterThreeProcesses: three processes, ten callers each calling
// back to back (each caller alone could send hundreds a second, so together
// they ask for far more than 10× the budget), for the test's duration. The
// simulator's GHL budget is scaled from 100 per 10 s to 10 per 1 s (same
// rate, ten times as many windows in the same time; the limiter learns it
// from the X-RateLimit-* headers). The simulator must send ≤ 1% 429s and
// the calls that succeed must reach ≥ 90% of the budget. The run lasts a
// minute (60 windows; RATELIMIT_TEST_SECONDS changes it), and
// RATELIMIT_TEST_UNSCALED=1 uses GHL's 100 per 10 s as it is.
func TestSharedLimiterThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("the shared limiter soak runs three processes for 60 s; run it without -short (make test)")
	}
	seconds := 60
	if s, err := strconv.Atoi(os.Getenv("RATELIMIT_TEST_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	rdb := newRedis(t)
	prefix := testPrefix(t, rdb)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	burst, interval := 10, time.Second
	if os.Getenv("RATELIMIT_TEST_UNSCALED") == "1" {
		burst, interval = 100, 10*time.Second // GHL's own budget
	}
	srv := sim.New(cat, sim.Config{Burst: burst, Interval: interval, Daily: 10_000_000})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	srv.AddLocation("loc-rl")
	tok := srv.IssueToken(sim.TokenSpec{LocationID: "loc-rl", Private: true})
	t.Setenv(envToken, tok.AccessToken)

	start := time.Now().Add(time.Second)
	until := start.Add(time.Duration(seconds) * time.Second)
	env := append(os.Environ(), envChild+"=1", envPrefix+"="+prefix, envSimURL+"="+hs.URL,
		envStart+"="+strconv.FormatInt(start.UnixNano(), 10), envUntil+"="+strconv.FormatInt(until.UnixNano(), 10))
	var outs [2]bytes.Buffer
	var cmds []*exec.Cmd
	for i := range outs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	okAll, limitedAll, errs := demand(prefix, hs.URL, start, until)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i+1, err, outs[i].String())
		}
		s := outs[i].String()
		j := strings.Index(s, "RESULT ")
		if j < 0 {
			t.Fatalf("worker %d printed no result:\n%s", i+1, s)
		}
		var r struct {
			OK, Limited int64
			Errors      []string
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(s[j+7:])), &r); err != nil {
			t.Fatal(err)
		}
		okAll += r.OK
		limitedAll += r.Limited
		errs = append(errs, r.Errors...)
	}
	var sent, sent429 int
	for _, r := range srv.Requests() {
		if r.Location == "loc-rl" {
			sent++
			if r.Status == http.StatusTooManyRequests {
				sent429++
			}
		}
	}
	budget := float64(burst) * float64(seconds) / interval.Seconds()
	share429 := 100 * float64(sent429) / float64(max(sent, 1))
	throughput := 100 * float64(okAll) / budget
	t.Logf("3 processes × %d callers for %ds against %d per %s: %d requests reached the simulator, %d answered 429 (%.2f%%); "+
		"%d calls succeeded = %.1f%% of the budget (%.0f); %d calls ended rate limited",
		callers, seconds, burst, interval, sent, sent429, share429, okAll, throughput, budget, limitedAll)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if share429 > 1 {
		t.Errorf("429s: %.2f%% > 1%%", share429)
	}
	if throughput < 90 {
		t.Errorf("throughput %.1f%% < 90%% of the budget", throughput)
	}
}

// The limiter is the transport's.
var _ transport.Limiter = (*ratelimit.Limiter)(nil)
