package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// The refresh test runs a second worker process: this test binary again,
// with these variables set, which makes TestMain run workerMain instead of
// the tests.
const (
	envChild   = "AUTH_TEST_WORKER"
	envPrefix  = "AUTH_TEST_PREFIX"
	envSimURL  = "AUTH_TEST_SIM_URL"
	envStartAt = "AUTH_TEST_START_AT"
	envContact = "AUTH_TEST_CONTACT"
	workers    = 20
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

type workerResult struct {
	OK     int      `json:"ok"`
	Errors []string `json:"errors"`
}

// runWorkers makes `workers` calls at once, at startAt, through a store and
// transport of their own (as a worker process would).
func runWorkers(prefix, simURL, contact string, startAt time.Time, logs io.Writer) workerResult {
	rdb := redistest.Dial(workers + 5)
	defer rdb.Close()
	cat, err := catalog.Default()
	if err != nil {
		return workerResult{Errors: []string{err.Error()}}
	}
	app, err := auth.NewOAuthApp(cat.App("ghl"), simURL, "sim-client", "sim-secret", "")
	if err != nil {
		return workerResult{Errors: []string{err.Error()}}
	}
	keys, _ := auth.ParseKeys(keyA)
	ring, _ := auth.NewKeyring(keys...)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring,
		OAuth: map[string]*auth.OAuthApp{"ghl": app}, Logger: log})
	if err != nil {
		return workerResult{Errors: []string{err.Error()}}
	}
	tr := transport.New(transport.Config{Catalog: cat, Connections: store, BaseURL: simURL, Logger: log})
	var ok atomic.Int64
	var mu sync.Mutex
	var res workerResult
	var wg sync.WaitGroup
	time.Sleep(time.Until(startAt))
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tr.Call(context.Background(), "acme", cat.MustOp("ghl.contacts.get"), map[string]any{"contactId": contact})
			if err != nil {
				mu.Lock()
				res.Errors = append(res.Errors, err.Error())
				mu.Unlock()
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	res.OK = int(ok.Load())
	return res
}

func workerMain() int {
	at, _ := strconv.ParseInt(os.Getenv(envStartAt), 10, 64)
	var logs bytes.Buffer
	res := runWorkers(os.Getenv(envPrefix), os.Getenv(envSimURL), os.Getenv(envContact), time.Unix(0, at), &logs)
	os.Stderr.Write(logs.Bytes())
	b, _ := json.Marshal(res)
	fmt.Println("RESULT " + string(b))
	return 0
}

// TestRefreshSerializedAcrossProcesses: 20 goroutines in each of two
// processes meet an expired token at once; exactly one refresh reaches the
// token endpoint, every call succeeds, and the spent refresh token is never
// sent again. Two ways to meet it: the stored expiry has passed (refresh
// ahead), or the API refuses the token with a 401 (refresh on 401).
func TestRefreshSerializedAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Parallel() // it mostly waits; make test runs it alone
	}
	for _, mode := range []string{"expired", "401"} {
		t.Run(mode, func(t *testing.T) {
			rdb := newRedis(t)
			prefix := testPrefix(t, rdb)
			e := newSim(t)
			ctx := context.Background()
			e.srv.AddLocation("loc-r")
			contact := e.srv.CreateContact("loc-r", map[string]any{"firstName": "Ada"})["id"].(string)
			tok := e.srv.IssueToken(sim.TokenSpec{LocationID: "loc-r"})
			e.srv.RevokeToken(tok.AccessToken) // the API no longer takes it either way
			cred := auth.Credential{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: time.Now().Add(-time.Minute)}
			if mode == "401" {
				cred.ExpiresAt = time.Now().Add(time.Hour) // looks valid until the API says no
			}
			var parentLogs syncBuffer
			store := newStore(t, rdb, prefix, testKeyring(t, keyA), e.oauthApp(t, ""), &parentLogs)
			if err := store.Put(ctx, auth.Connection{ID: "acme", App: "ghl", Kind: auth.KindOAuth, LocationID: "loc-r"}, cred); err != nil {
				t.Fatal(err)
			}

			startAt := time.Now().Add(700 * time.Millisecond)
			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), envChild+"=1", envPrefix+"="+prefix, envSimURL+"="+e.http.URL,
				envStartAt+"="+strconv.FormatInt(startAt.UnixNano(), 10), envContact+"="+contact)
			var childOut, childErr bytes.Buffer
			child.Stdout, child.Stderr = &childOut, &childErr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			parent := runWorkers(prefix, e.http.URL, contact, startAt, &parentLogs)
			if err := child.Wait(); err != nil {
				t.Fatalf("worker process: %v\n%s", err, childErr.String())
			}
			var other workerResult
			line := childOut.String()
			i := strings.Index(line, "RESULT ")
			if i < 0 {
				t.Fatalf("worker process printed no result: %s\n%s", line, childErr.String())
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(line[i+7:])), &other); err != nil {
				t.Fatal(err)
			}
			refreshes, issued := e.log.snapshot()
			t.Logf("calls ok: %d + %d of %d; refreshes at the token endpoint: %d", parent.OK, other.OK, 2*workers, len(refreshes))
			if parent.OK != workers || other.OK != workers {
				t.Fatalf("failed calls: %v %v", parent.Errors, other.Errors)
			}
			if len(refreshes) != 1 || refreshes[0] != tok.RefreshToken {
				t.Fatalf("refresh tokens sent: %d (want exactly the original, once)", len(refreshes))
			}
			// The stored token is the new one, and later calls keep using it.
			r, err := store.Resolve(ctx, "acme")
			if err != nil || r.Cred.RefreshToken == tok.RefreshToken || r.Cred.AccessToken == tok.AccessToken {
				t.Fatalf("stored credential after refresh: %v", err)
			}
			secrets := append(issued, tok.AccessToken, tok.RefreshToken)
			scanForSecrets(t, rdb, secrets)
			assertNoSecretsIn(t, "logs", parentLogs.String()+childErr.String()+childOut.String(), secrets)
		})
	}
}
