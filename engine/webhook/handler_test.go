package webhook_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine/webhook"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

// env is a receiver over the test's own Redis keys, with the simulator's
// Ed25519 key and a legacy RSA key of the test's own.
type env struct {
	t       testing.TB
	sim     *sim.Server
	rsa     *rsa.PrivateKey
	store   *webhook.Store
	metrics *webhook.Metrics
	url     string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	rdb, prefix := redistest.New(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{})
	t.Cleanup(srv.Close)
	keys, err := webhook.ParseKeys([]byte(srv.WebhookPublicKeyPEM()))
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys.RSA = []*rsa.PublicKey{&rk.PublicKey}
	e := &env{t: t, sim: srv, rsa: rk, store: webhook.NewStore(rdb, prefix),
		metrics: webhook.NewMetrics(prometheus.NewRegistry(), cat.WebhookEvents())}
	ts := httptest.NewServer(&webhook.Handler{Keys: keys, Store: e.store, Metrics: e.metrics})
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

// event is a ContactCreate payload as HighLevel sends it.
func event(id string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"type": "ContactCreate", "locationId": "loc1", "id": "c-" + id,
		"dateAdded": at.UTC().Format(time.RFC3339Nano), "timestamp": at.UTC().Format(time.RFC3339Nano), "webhookId": id})
	return b
}

func (e *env) rsaSign(body []byte) string {
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, e.rsa, crypto.SHA256, sum[:])
	if err != nil {
		e.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func (e *env) post(body []byte, headers map[string]string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) stored() int64 {
	n, err := e.store.Len(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestHandler sends good, replayed, tampered, unsigned, stale, oversized
// and malformed deliveries and checks each answer, what is stored and what
// is counted.
func TestHandler(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	good := event("w1", now)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	tampered := bytes.Replace(good, []byte("c-w1"), []byte("c-w2"), 1)
	big := event("w9", now)
	big = append(big[:len(big)-1], []byte(`,"pad":"`+strings.Repeat("x", 1<<20)+`"}`)...)
	ed := func(b []byte) map[string]string {
		return map[string]string{webhook.SignatureHeader: e.sim.SignWebhook(b)}
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
		result  string
		stored  int64
	}{
		{"signed", good, ed(good), 200, webhook.ResultAccepted, 1},
		{"replayed", good, ed(good), 200, webhook.ResultDuplicate, 1},
		{"signed again, legacy", good, map[string]string{webhook.LegacySignatureHeader: e.rsaSign(good)}, 200, webhook.ResultDuplicate, 1},
		{"legacy only", event("w3", now), map[string]string{webhook.LegacySignatureHeader: e.rsaSign(event("w3", now))}, 200, webhook.ResultAccepted, 2},
		{"bad Ed25519, good legacy", event("w4", now), map[string]string{webhook.SignatureHeader: e.sim.SignWebhook(good),
			webhook.LegacySignatureHeader: e.rsaSign(event("w4", now))}, 200, webhook.ResultAccepted, 3},
		{"changed byte", tampered, ed(good), 401, webhook.ResultBadSignature, 3},
		{"wrong key", event("w5", now), map[string]string{webhook.SignatureHeader: base64.StdEncoding.EncodeToString(
			ed25519.Sign(otherKey, event("w5", now)))}, 401, webhook.ResultBadSignature, 3},
		{"not base64", event("w5", now), map[string]string{webhook.SignatureHeader: "%%%"}, 401, webhook.ResultBadSignature, 3},
		{"unsigned", event("w6", now), nil, 401, webhook.ResultUnsigned, 3},
		{"stale", event("w7", now.Add(-6*time.Minute)), ed(event("w7", now.Add(-6*time.Minute))), 400, webhook.ResultStale, 3},
		{"from the future", event("w8", now.Add(10*time.Minute)), ed(event("w8", now.Add(10*time.Minute))), 400, webhook.ResultStale, 3},
		{"oversized", big, ed(big), 413, webhook.ResultOversized, 3},
		{"not JSON", []byte("hello"), ed([]byte("hello")), 400, webhook.ResultMalformed, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := "ContactCreate"
			if tc.result == webhook.ResultBadSignature || tc.result == webhook.ResultUnsigned || tc.result == webhook.ResultOversized ||
				tc.result == webhook.ResultMalformed {
				typ = "none" // an unverified body's type is not read
			}
			before := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(typ, tc.result))
			if got := e.post(tc.body, tc.headers); got != tc.status {
				t.Errorf("status %d, want %d", got, tc.status)
			}
			if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(typ, tc.result)) - before; got != 1 {
				t.Errorf("%s/%s counted %v times", typ, tc.result, got)
			}
			if n := e.stored(); n != tc.stored {
				t.Errorf("%d events stored, want %d", n, tc.stored)
			}
		})
	}
	resp, err := http.Get(e.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

// TestHandlerRedisDown: an event that cannot be stored is answered 429,
// the one status HighLevel retries.
func TestHandlerRedisDown(t *testing.T) {
	e := newEnv(t)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	keys, _ := webhook.ParseKeys([]byte(e.sim.WebhookPublicKeyPEM()))
	ts := httptest.NewServer(&webhook.Handler{Keys: keys, Store: webhook.NewStore(down, "x:")})
	defer ts.Close()
	e.url = ts.URL
	body := event("d1", time.Now())
	if got := e.post(body, map[string]string{webhook.SignatureHeader: e.sim.SignWebhook(body)}); got != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", got)
	}
}

// TestSimulatorDeliveries: the simulator's own deliveries (both signature
// schemes) are accepted by a receiver with its keys, and stored with their
// type, location and body.
func TestSimulatorDeliveries(t *testing.T) {
	rdb, prefix := redistest.New(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, sim.Config{WebhookRSA: true})
	t.Cleanup(srv.Close)
	srv.AddLocation("locSIM")
	for _, tc := range []struct{ name, pem string }{
		{"Ed25519", srv.WebhookPublicKeyPEM()},
		{"legacy RSA", srv.WebhookRSAPublicKeyPEM()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := webhook.ParseKeys([]byte(tc.pem))
			if err != nil {
				t.Fatal(err)
			}
			store := webhook.NewStore(rdb, prefix+tc.name+":")
			ts := httptest.NewServer(&webhook.Handler{Keys: keys, Store: store})
			defer ts.Close()
			srv.AddWebhook(ts.URL)
			c := srv.CreateContact("locSIM", map[string]any{"firstName": "Hook"})
			ctx := context.Background()
			if err := store.Group(ctx); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				evs, err := store.Read(ctx, "t", 10, time.Minute, 100*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs {
					if ev.Type == "ContactCreate" && ev.Location == "locSIM" && bytes.Contains(ev.Body, []byte(c["id"].(string))) {
						return
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no stored event for contact %v; deliveries %+v", c["id"], srv.Deliveries())
				}
			}
		})
	}
}
