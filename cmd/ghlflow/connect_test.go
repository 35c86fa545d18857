package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
)

// TestConnectCommands drives `ghlflow connect` as a user does: an OAuth
// install from the terminal against the simulator, a token read from the
// environment, list, refresh, pause, resume and remove; no secret reaches
// Redis in plain text.
func TestConnectCommands(t *testing.T) {
	e := newE2E(t)
	key := auth.GenerateKey()
	// The simulator's base URL is that of the static connection of the e2e
	// environment.
	conns, _ := os.ReadFile(e.conns)
	base := regexp.MustCompile(`base_url: "([^"]+)"`).FindStringSubmatch(string(conns))[1]
	common := []string{"--redis", e.redis, "--prefix", e.prefix}
	oauth := []string{"--base-url", base, "--client-id", "sim-client", "--client-secret", "sim-secret"}
	// connect runs `ghlflow connect SUB [flags] ARGS...`; each subcommand
	// takes only its own flags: the OAuth client only where OAuth is used.
	connect := func(env []string, sub string, args ...string) *exec.Cmd {
		flags := common
		switch sub {
		case "install", "refresh", "exchange":
			flags = append(append([]string{}, common...), oauth...)
		case "token", "basic":
			flags = append(append([]string{}, common...), "--base-url", base)
		}
		cmd := exec.Command(ghlflowBin(t), append(append([]string{"connect", sub}, flags...), args...)...)
		cmd.Env = append(append(os.Environ(), auth.EnvSecretKey+"="+key), env...)
		return cmd
	}
	run := func(env []string, sub string, args ...string) string {
		t.Helper()
		out, err := connect(env, sub, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("connect %s %v: %v\n%s", sub, args, err, out)
		}
		return string(out)
	}

	// OAuth install: the command prints the authorize URL and waits for the
	// callback; the simulator's authorize page approves at once.
	cmd := connect(nil, "install", "--name", "acme-oauth", "--scopes", "contacts.readonly,contacts.write", "--listen", freeAddr(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var authorize string
	var printed strings.Builder
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		printed.WriteString(line + "\n")
		if strings.HasPrefix(line, "http") {
			authorize = line
			break
		}
	}
	if authorize == "" {
		t.Fatalf("no authorize URL:\n%s", printed.String())
	}
	resp, err := http.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Connected") {
		t.Fatalf("callback page: %d %s", resp.StatusCode, page)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("install: %v\n%s%s", err, printed.String(), rest)
	}

	// A Private Integration token from the environment; storing it lifts
	// the engine's pause of that connection.
	ctx := context.Background()
	states := connstate.New(e.rdb, e.prefix)
	if err := states.Set(ctx, "acme-pit", connstate.NeedsReauth, "unauthorized: token revoked"); err != nil {
		t.Fatal(err)
	}
	out := run([]string{"GHL_PIT=pit-secret-value"}, "token", "--name", "acme-pit", "--location", e.loc, "--token-env", "GHL_PIT")
	if !strings.Contains(out, "stored connection acme-pit (ghl, private)") {
		t.Fatalf("token: %s", out)
	}
	if st, _ := states.Get(ctx, "acme-pit"); !st.InForce() {
		t.Fatal("the new token did not lift the pause")
	}
	list := run(nil, "list")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`acme-oauth\s+ghl\s+oauth\s+\S+\s+\S+\s+ok\s+.*\s2\n`),
		regexp.MustCompile(`acme-pit\s+ghl\s+private\s+` + e.loc + `\s+-\s+ok\s`),
	} {
		if !want.MatchString(list) {
			t.Fatalf("list lacks %s:\n%s", want, list)
		}
	}
	if out := run(nil, "refresh", "acme-oauth"); !strings.Contains(out, "refreshed acme-oauth") {
		t.Fatalf("refresh: %s", out)
	}
	run(nil, "pause", "acme-pit", "--reason", "billing hold") // flags after the name too
	if list := run(nil, "list"); !regexp.MustCompile(`acme-pit.*paused \(billing hold\)`).MatchString(list) {
		t.Fatalf("after pause:\n%s", list)
	}
	_ = states.Set(ctx, "acme", connstate.NeedsReauth, "unauthorized: token revoked") // a static connection
	if list := run(nil, "list"); !strings.Contains(list, "engine paused acme: unauthorized: token revoked") {
		t.Fatalf("engine pause not listed:\n%s", list)
	}
	// A location asked for ten times its burst budget: the engine's
	// stretch of its polls is listed with the reason.
	lim := ratelimit.New(ratelimit.Config{Redis: e.rdb, Prefix: e.prefix, Catalog: e.cat})
	if _, err := lim.Demand(ctx, "ghl", e.loc, 100); err != nil {
		t.Fatal(err)
	}
	if list := run(nil, "list"); !regexp.MustCompile(`engine stretches polls of ghl ` + e.loc + ` 10\.\d\d×: .*100\.0 requests/s`).MatchString(list) {
		t.Fatalf("stretch not listed:\n%s", list)
	}
	run(nil, "resume", "acme")
	if st, _ := states.Get(ctx, "acme"); !st.InForce() {
		t.Fatal("resume did not lift the engine's pause of a static connection")
	}
	run(nil, "resume", "acme-pit")
	if list := run(nil, "list"); !regexp.MustCompile(`acme-pit.*\sok\s`).MatchString(list) {
		t.Fatalf("after resume:\n%s", list)
	}

	// Nothing secret in Redis: every value under the prefix is scanned.
	keys, err := e.rdb.Keys(ctx, e.prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		if typ, _ := e.rdb.Type(ctx, k).Result(); typ != "hash" {
			continue
		}
		for f, v := range e.rdb.HGetAll(ctx, k).Val() {
			if strings.Contains(v, "pit-secret-value") || strings.Contains(v, "sim-secret") {
				t.Fatalf("plain secret in %s %s", k, f)
			}
		}
	}

	run(nil, "remove", "acme-pit")
	if list := run(nil, "list"); strings.Contains(list, "acme-pit") {
		t.Fatalf("after remove:\n%s", list)
	}
	if _, err := connect(nil, "remove", "acme-pit").CombinedOutput(); err == nil {
		t.Fatal("removing a missing connection succeeded")
	}
}
