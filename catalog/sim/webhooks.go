package sim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook signature headers.
const (
	SignatureHeader       = "x-ghl-signature" // Ed25519 over the raw body, base64
	LegacySignatureHeader = "x-wh-signature"  // RSA-SHA256 (PKCS #1 v1.5) over the raw body, base64
)

// Delivery is one webhook POST the simulator made.
type Delivery struct {
	URL      string
	Type     string
	Location string
	Body     []byte
	Status   int // the receiver's answer; 0 when it could not be reached
	Attempts int
	Time     time.Time
	// Dropped is set when a WebhookDrop fault lost the delivery.
	Dropped bool
}

type hookEvent struct {
	loc, typ string
	body     []byte
}

type webhooks struct {
	s       *Server
	mu      sync.Mutex
	urls    []string
	n       atomic.Int32
	queue   chan hookEvent
	once    sync.Once
	done    chan struct{}
	log     []Delivery
	client  *http.Client
	retries int
}

func newWebhooks(s *Server, urls []string) *webhooks {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("sim: generate webhook key: " + err.Error())
	}
	s.edPub, s.edPriv = pub, priv
	if s.cfg.WebhookRSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("sim: generate RSA webhook key: " + err.Error())
		}
		s.rsaKey = k
	}
	w := &webhooks{s: s, queue: make(chan hookEvent, 4096), done: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second}, retries: 6}
	for _, u := range urls {
		w.add(u)
	}
	return w
}

func (w *webhooks) add(url string) {
	w.mu.Lock()
	w.urls = append(w.urls, url)
	w.n.Store(int32(len(w.urls)))
	w.mu.Unlock()
	w.once.Do(func() { go w.run() })
}

// AddWebhook registers a URL that receives every event from now on.
func (s *Server) AddWebhook(url string) { s.hooks.add(url) }

// Close stops the webhook sender. The server still answers requests.
func (s *Server) Close() {
	select {
	case <-s.hooks.done:
	default:
		close(s.hooks.done)
	}
}

// WebhookPublicKey returns the Ed25519 public key webhooks are signed with.
func (s *Server) WebhookPublicKey() ed25519.PublicKey { return s.edPub }

// WebhookPublicKeyPEM returns that key as a PEM "PUBLIC KEY" block.
func (s *Server) WebhookPublicKeyPEM() string { return pemPublic(s.edPub) }

// WebhookRSAPublicKeyPEM returns the legacy RSA key's PEM, or "" when RSA
// signing is off.
func (s *Server) WebhookRSAPublicKeyPEM() string {
	if s.rsaKey == nil {
		return ""
	}
	return pemPublic(&s.rsaKey.PublicKey)
}

func pemPublic(k any) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Deliveries returns the webhook POSTs made so far.
func (s *Server) Deliveries() []Delivery {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return append([]Delivery(nil), s.hooks.log...)
}

// SignWebhook returns the x-ghl-signature value for a body.
func (s *Server) SignWebhook(body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.edPriv, body))
}

// emit queues an event for every registered URL (nothing happens without
// URLs). The payload is the object's fields at the top level (or under
// nestedEvents' key) with type, locationId, timestamp and webhookId, as
// GHL's event payloads are.
func (s *Server) emit(loc, typ string, obj map[string]any) {
	if s.hooks.n.Load() == 0 {
		return
	}
	p := make(map[string]any, len(obj)+4)
	for k, v := range obj {
		p[k] = v
	}
	s.emitPayload(loc, typ, p)
}

// emitRaw is emit for an object given as raw JSON.
func (s *Server) emitRaw(loc, typ string, raw []byte) {
	if s.hooks.n.Load() == 0 {
		return
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		return
	}
	s.emitPayload(loc, typ, p)
}

// nestedEvents are the event types whose payload carries the object under
// a key instead of at the top level (docs/webhook events/Appointment*.md).
var nestedEvents = map[string]string{
	"AppointmentCreate": "appointment", "AppointmentUpdate": "appointment", "AppointmentDelete": "appointment",
}

func (s *Server) emitPayload(loc, typ string, p map[string]any) {
	if key := nestedEvents[typ]; key != "" {
		p = map[string]any{key: p}
	}
	p["type"] = typ
	p["locationId"] = loc
	p["timestamp"] = isoTime(s.now())
	p["webhookId"] = traceID()
	body, err := json.Marshal(p)
	if err != nil {
		return
	}
	select {
	case s.hooks.queue <- hookEvent{loc: loc, typ: typ, body: body}:
	default: // a full queue drops the event, as a lossy network would
	}
}

func (w *webhooks) run() {
	for {
		select {
		case <-w.done:
			return
		case ev := <-w.queue:
			w.mu.Lock()
			urls := append([]string(nil), w.urls...)
			w.mu.Unlock()
			for _, u := range urls {
				w.deliver(u, ev)
			}
		}
	}
}

// deliver POSTs one event, retrying (briefly) only while the receiver
// answers 429, as GHL does.
func (w *webhooks) deliver(url string, ev hookEvent) {
	d := Delivery{URL: url, Type: ev.typ, Location: ev.loc, Body: ev.body, Time: w.s.now()}
	d.Dropped = w.s.faults.takeDrop()
	for !d.Dropped && d.Attempts < w.retries {
		d.Attempts++
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(ev.body))
		if err != nil {
			break
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(SignatureHeader, w.s.SignWebhook(ev.body))
		if w.s.rsaKey != nil {
			sum := sha256.Sum256(ev.body)
			if sig, err := rsa.SignPKCS1v15(rand.Reader, w.s.rsaKey, crypto.SHA256, sum[:]); err == nil {
				req.Header.Set(LegacySignatureHeader, base64.StdEncoding.EncodeToString(sig))
			}
		}
		resp, err := w.client.Do(req)
		if err != nil {
			d.Status = 0
			break
		}
		resp.Body.Close()
		d.Status = resp.StatusCode
		if resp.StatusCode != http.StatusTooManyRequests {
			break
		}
		select {
		case <-w.done:
			return
		case <-time.After(time.Duration(d.Attempts) * 50 * time.Millisecond):
		}
	}
	w.mu.Lock()
	w.log = append(w.log, d)
	w.mu.Unlock()
}
