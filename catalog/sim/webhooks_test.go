package sim_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

type received struct {
	body []byte
	sig  string
	rsa  string
}

func TestWebhookSignatures(t *testing.T) {
	got := make(chan received, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{b, r.Header.Get(sim.SignatureHeader), r.Header.Get(sim.LegacySignatureHeader)}
	}))
	defer recv.Close()
	e := newEnv(t, sim.Config{WebhookRSA: true})
	t.Cleanup(e.srv.Close)
	e.srv.AddWebhook(recv.URL)

	// The public key as a receiver would fetch it.
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/_sim/webhook-public-key", nil)
	st, pemBytes := e.send(req)
	block, _ := pem.Decode(pemBytes)
	if st != 200 || block == nil {
		t.Fatalf("public key: %d %s", st, pemBytes)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.(ed25519.PublicKey)
	rblock, _ := pem.Decode([]byte(e.srv.WebhookRSAPublicKeyPEM()))
	rkey, err := x509.ParsePKIXPublicKey(rblock.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	e.call("ghl.contacts.create", map[string]any{"locationId": e.loc, "email": "hook@example.com"})
	var ev received
	select {
	case ev = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook")
	}
	var payload map[string]any
	if err := json.Unmarshal(ev.body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload["type"] != "ContactCreate" || payload["locationId"] != e.loc || payload["email"] != "hook@example.com" ||
		payload["webhookId"] == nil || payload["timestamp"] == nil {
		t.Fatalf("payload: %s", ev.body)
	}
	sig, err := base64.StdEncoding.DecodeString(ev.sig)
	if err != nil || !ed25519.Verify(pub, ev.body, sig) {
		t.Fatalf("signature does not verify: %q", ev.sig)
	}
	tampered := append([]byte(nil), ev.body...)
	tampered[len(tampered)/2] ^= 1
	if ed25519.Verify(pub, tampered, sig) {
		t.Fatal("tampered body verifies")
	}
	rsig, _ := base64.StdEncoding.DecodeString(ev.rsa)
	sum := sha256.Sum256(ev.body)
	if err := rsa.VerifyPKCS1v15(rkey.(*rsa.PublicKey), crypto.SHA256, sum[:], rsig); err != nil {
		t.Fatalf("legacy RSA signature: %v", err)
	}
	tsum := sha256.Sum256(tampered)
	if rsa.VerifyPKCS1v15(rkey.(*rsa.PublicKey), crypto.SHA256, tsum[:], rsig) == nil {
		t.Fatal("tampered body verifies with RSA")
	}
}

// TestWebhookDrop: a webhook-drop fault loses the next deliveries; the
// ones after arrive.
func TestWebhookDrop(t *testing.T) {
	got := make(chan []byte, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer recv.Close()
	f, err := sim.ParseFaults("webhook-drop=1")
	if err != nil || f.WebhookDrop != 1 {
		t.Fatalf("ParseFaults: %+v %v", f, err)
	}
	e := newEnv(t, sim.Config{Faults: f})
	t.Cleanup(e.srv.Close)
	e.srv.AddWebhook(recv.URL)
	e.call("ghl.contacts.create", map[string]any{"locationId": e.loc, "email": "lost@example.com"})
	e.call("ghl.contacts.create", map[string]any{"locationId": e.loc, "email": "kept@example.com"})
	select {
	case b := <-got:
		var p map[string]any
		_ = json.Unmarshal(b, &p)
		if p["email"] != "kept@example.com" {
			t.Fatalf("the first delivery arrived: %s", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook")
	}
	ds := e.srv.Deliveries()
	for end := time.Now().Add(5 * time.Second); len(ds) < 2 && time.Now().Before(end); ds = e.srv.Deliveries() {
		time.Sleep(10 * time.Millisecond) // the log follows the answer
	}
	if len(ds) != 2 || !ds[0].Dropped || ds[1].Dropped || ds[1].Status != 200 {
		t.Fatalf("deliveries: %+v", ds)
	}
	if left := e.srv.CurrentFaults().WebhookDrop; left != 0 {
		t.Fatalf("%d drops left", left)
	}
}

// TestWebhookAppointmentNested: appointment events carry the appointment
// under "appointment", as HighLevel's do; contact events carry the contact
// at the top level.
func TestWebhookAppointmentNested(t *testing.T) {
	got := make(chan []byte, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer recv.Close()
	e := newEnv(t, sim.Config{})
	t.Cleanup(e.srv.Close)
	e.srv.AddWebhook(recv.URL)
	cal := e.call("ghl.calendars.create", map[string]any{"locationId": e.loc, "name": "Demo"})
	calID, _ := cal["calendar"].(map[string]any)["id"].(string)
	contact := e.srv.CreateContact(e.loc, map[string]any{"firstName": "Booked"})
	e.call("ghl.appointments.create", map[string]any{"calendarId": calID, "locationId": e.loc, "contactId": contact["id"],
		"startTime": time.Now().Add(96 * time.Hour).Format(time.RFC3339), "title": "Demo"})
	deadline := time.After(5 * time.Second)
	for {
		select {
		case b := <-got:
			var p map[string]any
			_ = json.Unmarshal(b, &p)
			if p["type"] != "AppointmentCreate" {
				continue
			}
			a, ok := p["appointment"].(map[string]any)
			if !ok || a["title"] != "Demo" || p["locationId"] != e.loc || p["webhookId"] == nil || p["title"] != nil {
				t.Fatalf("payload: %s", b)
			}
			return
		case <-deadline:
			t.Fatal("no AppointmentCreate webhook")
		}
	}
}
