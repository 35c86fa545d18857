package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/engine/auth"
)

// runNoKey starts `ghlflow run` without a secret key in its environment.
func (e *e2eEnv) runNoKey(args ...string) *exec.Cmd {
	cmd := exec.Command(ghlflowBin(e.t), append([]string{"run", "--recipes", e.recipes, "--redis", e.redis, "--http", "",
		"--prefix", e.prefix, "--every", "1s", "--tick", "100ms"}, args...)...)
	cmd.Env = append(os.Environ(), auth.EnvSecretKey+"=", auth.EnvSecretKeyFile+"=")
	return cmd
}

// TestRunSecretKeyOnlyWhenSealing: with static connections only, run starts
// without a secret key; once the store holds a sealed connection it
// refuses to start without one and says how to fix it.
func TestRunSecretKeyOnlyWhenSealing(t *testing.T) {
	overlapInShort(t)
	e := newE2E(t)
	cmd := e.runNoKey("--connections", e.conns)
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first poll", out, func() bool { return e.polls() >= 1 })
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run with static connections and no key: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "test setting: every subscription polls every 1s") {
		t.Fatalf("--every 1s is not logged as a test setting:\n%s", out.String())
	}

	keys, err := auth.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: e.rdb, Prefix: e.prefix, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Put(ctx, auth.Connection{ID: "sealed", App: "ghl", Kind: auth.KindPrivate, LocationID: e.loc},
		auth.Credential{AccessToken: "t"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Delete(ctx, "sealed") })
	b, err := e.runNoKey("--connections", e.conns).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), "no secret key, and the connection store in Redis holds sealed connections: set GHLFLOW_SECRET_KEY") {
		t.Fatalf("run with a sealed connection and no key: %v\n%s", err, b)
	}
}

// TestRunRefusesUnknownConnection: a recipe naming a connection that
// exists nowhere stops run before it starts, with the recipe's place.
func TestRunRefusesUnknownConnection(t *testing.T) {
	e := newE2E(t)
	b, err := e.runNoKey().CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(b), `tag-new-contacts.yaml:4:15: unknown connection "acme"`) {
		t.Fatalf("run with an unknown connection: %v\n%s", err, b)
	}
}

// TestRunShutdownWithClosedOutput: when whatever read the engine's output
// is gone (ghlflow run | head), an interrupt still shuts the engine down
// cleanly: it leaves asynq's servers and workers sets.
func TestRunShutdownWithClosedOutput(t *testing.T) {
	overlapInShort(t)
	e := newE2E(t)
	cmd := e.runNoKey("--connections", e.conns)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "recipes loaded") {
	}
	waitFor(t, 30*time.Second, "the first poll", nil, func() bool { return e.polls() >= 1 })
	member := fmt.Sprintf(":%d:", cmd.Process.Pid)
	registered := func() bool {
		ms, _ := e.rdb.ZRange(context.Background(), "asynq:servers", 0, -1).Result()
		for _, m := range ms {
			if strings.Contains(m, member) {
				return true
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, "the engine in asynq:servers", nil, registered)
	stderr.Close() // the reader goes away; the next log line meets a closed pipe
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("the engine died with its output closed: %v", err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the engine was killed by %v", ws.Signal())
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if registered() {
		t.Fatal("the engine is still in asynq:servers after its shutdown")
	}
}
