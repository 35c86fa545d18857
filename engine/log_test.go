package engine_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// logBuffer is a log sink safe for the engine's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFailedPollLogsItsReason runs the engine on recipes whose polls fail
// (an unknown connection, a param that does not render) and checks that
// the log names the reason once per failed poll task, with the recipe,
// subscription and connection, at the default level, and a summary line
// counts the failures.
func TestFailedPollLogsItsReason(t *testing.T) {
	overlapInShort(t)
	cases := []struct {
		name, recipe, reason string
	}{
		{name: "unknown connection", reason: `connection not found: \"nobody\"`, recipe: `name: lost-connection
trigger: {op: ghl.contacts.search, connection: nobody, every: 1m}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: [x]}
`},
		{name: "param that does not render", reason: `trigger input query`, recipe: `name: bad-param
trigger:
  op: ghl.contacts.search
  connection: acme
  every: 1m
  params: {query: "{{ parseTime .recipe }}"}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "{{ .trigger.id }}", tags: [x]}
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb, prefix := testRedis(t)
			prefix = strings.NewReplacer("/", "-", " ", "-").Replace(prefix)
			t.Cleanup(func() {
				keys, _ := rdb.Keys(context.Background(), "asynq:{"+prefix+"*").Result()
				if len(keys) > 0 {
					rdb.Del(context.Background(), keys...)
				}
				for _, q := range []string{engine.QueuePoll, engine.QueueChain} {
					rdb.SRem(context.Background(), "asynq:queues", engine.QueueName(prefix, q))
				}
			})
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(tc.recipe), 0o600); err != nil {
				t.Fatal(err)
			}
			cat := testCatalog(t)
			conns, err := auth.NewStatic(auth.StaticEntry{ID: "acme", App: "ghl", LocationID: "locLOGTEST", Token: "t"})
			if err != nil {
				t.Fatal(err)
			}
			logs := &logBuffer{}
			eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat,
				Connections: conns, BaseURL: "http://127.0.0.1:1"}), Redis: rdb, Recipes: []string{dir}, Prefix: prefix,
				Every: time.Second, TickEvery: 100 * time.Millisecond, SummaryEvery: 500 * time.Millisecond,
				ShutdownTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(logs.String(), "errors=1") && !strings.Contains(logs.String(), "errors=2") {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("no failed poll and summary logged:\n%s", logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			archived, err := asynq.NewInspectorFromRedisClient(rdb).ListArchivedTasks(engine.QueueName(prefix, engine.QueuePoll))
			if err != nil || len(archived) == 0 {
				t.Fatalf("archived polls: %d, %v", len(archived), err)
			}
			out := logs.String()
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, tc.reason) {
					lines = append(lines, l)
				}
			}
			// Polls may have failed between the summary and the shutdown;
			// each archived poll task logs its reason once.
			if len(lines) != len(archived) {
				t.Fatalf("%d lines with the reason for %d failed polls:\n%s", len(lines), len(archived), out)
			}
			sub := engine.SubscriptionID(strings.SplitN(strings.TrimPrefix(tc.recipe, "name: "), "\n", 2)[0],
				map[bool]string{true: "nobody", false: "acme"}[strings.Contains(tc.recipe, "nobody")])
			for _, l := range lines {
				for _, want := range []string{"level=WARN", `msg="poll failed"`, "recipe=", "sub=" + sub, "connection=", "action=fail"} {
					if !strings.Contains(l, want) {
						t.Fatalf("log line lacks %s: %s", want, l)
					}
				}
			}
			if strings.Contains(out, "Retry exhausted") {
				t.Fatalf("asynq's line without a reason is logged:\n%s", out)
			}
		})
	}
}

// TestFailedChainLogsItsReason: a chain whose step the API refuses (404)
// logs its reason once, at the default level, with the recipe, the
// subscription, the connection and the item.
func TestFailedChainLogsItsReason(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	prefix = strings.NewReplacer("/", "-", " ", "-").Replace(prefix)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), "asynq:{"+prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		for _, q := range []string{engine.QueuePoll, engine.QueueChain} {
			rdb.SRem(context.Background(), "asynq:queues", engine.QueueName(prefix, q))
		}
	})
	cat := testCatalog(t)
	loc := "locLOGCHAIN000000000"
	srv, ts, _, conns := simConn(t, cat, loc, sim.Config{Burst: -1, Daily: -1})
	dir := t.TempDir()
	recipe := `name: bad-step
trigger: {op: ghl.contacts.search, connection: acme, every: 1m, params: {sort: [{field: dateAdded, direction: desc}]}}
steps:
  - op: ghl.contacts.tags.add
    input: {contactId: "nope0000000000000000", tags: [x]}
`
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(recipe), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	eng, err := engine.New(engine.Config{Catalog: cat, Caller: transport.New(transport.Config{Catalog: cat,
		Connections: conns, BaseURL: ts.URL}), Redis: rdb, Recipes: []string{dir}, Prefix: prefix,
		Every: time.Second, TickEvery: 100 * time.Millisecond, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	// The first poll seeds; a contact added after it fires one chain.
	sub := engine.SubscriptionID("bad-step", "acme")
	deadline := time.Now().Add(20 * time.Second)
	for {
		polls, _ := eng.History.Polls(context.Background(), sub, 1)
		if len(polls) > 0 && polls[0].Seeded {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no seed poll:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := srv.CreateContact(loc, map[string]any{"email": "log@example.com"})
	for !strings.Contains(logs.String(), `msg="chain failed"`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no failed chain logged:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // later polls find nothing new
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "not found") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d lines with the reason, want 1:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"level=WARN", "recipe=bad-step", "sub=" + sub, "connection=acme", "item=" + c["id"].(string),
		"action=fail"} {
		if !strings.Contains(lines[0], want) {
			t.Fatalf("log line lacks %s: %s", want, lines[0])
		}
	}
}

// TestLogPolls: with LogPolls (run -v) every poll logs an info line naming
// its tenant, recipe, subscription, connection and what it read and found
// new; without it the default level shows no such line.
func TestLogPolls(t *testing.T) {
	overlapInShort(t)
	for _, on := range []bool{true, false} {
		rdb, prefix := testRedis(t)
		cat := testCatalog(t)
		srv, ts, _, conns := simConn(t, cat, "loc-logs", sim.Config{})
		srv.CreateContact("loc-logs", map[string]any{"email": "first@example.com"})
		logs := &logBuffer{}
		eng, err := engine.New(engine.Config{Catalog: cat, Redis: rdb, Recipes: []string{"testdata/sharedrecipes"}, Prefix: prefix,
			Caller: transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: ts.URL}), Connections: conns,
			Every: time.Second, TickEvery: 50 * time.Millisecond, LogPolls: on,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- eng.Run(ctx) }()
		sub := engine.SubscriptionID("shared-a", "acme")
		until(t, 10*time.Second, "shared-a polled twice", func() bool {
			ps, _ := eng.History.Polls(ctx, sub, 0)
			return len(ps) >= 2
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "msg=poll ") && strings.Contains(l, "sub="+sub) {
				lines = append(lines, l)
			}
		}
		if !on {
			if len(lines) > 0 {
				t.Errorf("poll lines without LogPolls: %q", lines)
			}
			continue
		}
		if len(lines) < 2 {
			t.Fatalf("%d poll lines for two polls:\n%s", len(lines), logs.String())
		}
		for _, want := range []string{"level=INFO", "tenant=default", "recipe=shared-a", "connection=acme", "read=1", "new=0", "requests=1"} {
			if !strings.Contains(lines[0], want) {
				t.Errorf("the first poll's line lacks %s: %s", want, lines[0])
			}
		}
	}
}
