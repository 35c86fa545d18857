package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/webhook"
)

// startInstant runs `ghlflow run` on the instant recipes at their own
// 15-minute interval, with the simulator's webhook key, and has the
// simulator send its webhooks to it.
func (e *e2eEnv) startInstant(t *testing.T) (func() *syncBuf, func()) {
	t.Helper()
	e.recipes = "testdata/instantrecipes"
	key := filepath.Join(t.TempDir(), "ghl-webhook.pem")
	if err := os.WriteFile(key, []byte(e.srv.WebhookPublicKeyPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	var out *syncBuf
	var kill func()
	start := func() *syncBuf {
		cmd, o := e.start("--every", "15m", "--ghl-webhook-key", key, "--chain-concurrency", "8")
		out = o
		kill = func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
		waitFor(t, 20*time.Second, "the engine's HTTP side", out, func() bool {
			resp, err := http.Get("http://" + e.http + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		return out
	}
	e.srv.AddWebhook("http://" + e.http + engine.WebhookPath)
	t.Cleanup(e.srv.Close)
	return start, func() { kill() }
}

// notes counts the notes written per contact.
func (e *e2eEnv) notes() map[string]int {
	n := map[string]int{}
	for _, w := range e.srv.Writes("ghl.contacts.notes.create") {
		n[strings.TrimSuffix(strings.TrimPrefix(w.Path, "/contacts/"), "/notes")]++
	}
	return n
}

// TestRunInstant: `ghlflow run` receives the simulator's signed webhooks
// at /webhooks/ghl and a new contact's chain of a 15-minute recipe runs
// within a second; a delivery signed with another key is refused and
// counted.
func TestRunInstant(t *testing.T) {
	overlapInShort(t)
	e := newE2E(t)
	start, _ := e.startInstant(t)
	out := start()
	time.Sleep(300 * time.Millisecond) // the router joins its consumer group
	created := time.Now()
	id := fmt.Sprint(e.srv.CreateContact(e.loc, map[string]any{"firstName": "Instant"})["id"])
	waitFor(t, time.Second, "the instant chain's note", out, func() bool { return e.notes()[id] == 1 })
	t.Logf("contact created → note written in %v", time.Since(created))

	other := sim.New(e.cat, sim.Config{})
	defer other.Close()
	body := []byte(fmt.Sprintf(`{"type":"ContactCreate","locationId":%q,"id":"forged","timestamp":%q,"webhookId":"f1"}`,
		e.loc, time.Now().UTC().Format(time.RFC3339)))
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.http+engine.WebhookPath, strings.NewReader(string(body)))
	req.Header.Set(webhook.SignatureHeader, other.SignWebhook(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a delivery signed with another key: %d", resp.StatusCode)
	}
	_, m := getWithKey("http://"+e.http+"/metrics", e.admin)
	for _, want := range []string{`ghlflow_webhooks_total{result="accepted",type="ContactCreate"} 1`,
		`ghlflow_webhooks_total{result="bad_signature",type="none"} 1`, `ghlflow_webhook_chain_start_seconds_count 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if e.notes()["forged"] != 0 {
		t.Error("the forged delivery fired")
	}
}

// TestWebhookCrash kills `ghlflow run` with SIGKILL right after a burst of
// the simulator's 200 signed events was accepted, restarts it, and checks that
// every one of the 200 chains runs, once. The events a dead process had
// read but not acknowledged are claimed again after 30 s.
func TestWebhookCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the killed process's events and tasks to be claimed again (about a minute); run it without -short")
	}
	e := newE2E(t)
	start, kill := e.startInstant(t)
	out := start()
	// Slow API answers keep chains in flight when the kill lands.
	e.srv.SetFaults(sim.Faults{Latency: 20 * time.Millisecond, Jitter: 20 * time.Millisecond, WebhookDrop: 200})
	time.Sleep(300 * time.Millisecond)
	const total = 200
	var ids []string
	for i := range total {
		ids = append(ids, fmt.Sprint(e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("Crash%d", i)})["id"]))
	}
	// The simulator's 200 signed events arrive as one burst from 16
	// senders (the simulator itself sends one at a time); the process is
	// killed as the last one is accepted, with most not routed yet.
	var bodies [][]byte
	waitFor(t, 10*time.Second, "200 events", out, func() bool {
		bodies = bodies[:0]
		for _, d := range e.srv.Deliveries() {
			if d.Dropped {
				bodies = append(bodies, d.Body)
			}
		}
		return len(bodies) == total
	})
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < total; i += 16 {
				req, _ := http.NewRequest(http.MethodPost, "http://"+e.http+engine.WebhookPath, bytes.NewReader(bodies[i]))
				req.Header.Set(webhook.SignatureHeader, e.srv.SignWebhook(bodies[i]))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("delivery %d: %d", i, resp.StatusCode)
				}
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	kill()
	waiting, _ := webhook.NewStore(e.rdb, e.prefix).Len(context.Background())
	t.Logf("killed after %d accepted deliveries with %d events not yet acknowledged and %d of %d notes written",
		accepted.Load(), waiting, len(e.notes()), total)
	out = start()
	missing := func() []string {
		n := e.notes()
		var miss []string
		for _, id := range ids {
			if n[id] == 0 {
				miss = append(miss, id)
			}
		}
		return miss
	}
	deadline := time.Now().Add(3 * time.Minute)
	for len(missing()) > 0 {
		if time.Now().After(deadline) {
			e.dumpQueues(t, engine.QueueName(e.prefix, engine.QueueChain))
			t.Fatalf("no note for %d of %d contacts\n%s", len(missing()), total, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	dups := 0
	for _, id := range ids {
		dups += e.notes()[id] - 1
	}
	fmt.Printf("webhook crash test: %d deliveries accepted, killed with %d unacknowledged, all %d chains ran, %d notes written twice\n",
		total, waiting, total, dups)
	// The chains may all have run by way of the polls before the dead
	// process's events are claimed again (30 s after the kill); the stream
	// then drains as they are, each meeting its chain's task id.
	store := webhook.NewStore(e.rdb, e.prefix)
	drained := time.Now().Add(time.Minute)
	left, _ := store.Len(context.Background())
	for left != 0 && time.Now().Before(drained) {
		time.Sleep(200 * time.Millisecond)
		left, _ = store.Len(context.Background())
	}
	if left != 0 {
		t.Errorf("%d events left in the stream a minute after the chains ran", left)
	}
}
