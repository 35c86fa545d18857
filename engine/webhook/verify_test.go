package webhook_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/ghlflow/ghlflow/engine/webhook"
)

// TestKeys reads the key forms a key file may hold.
func TestKeys(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	edPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	def := webhook.DefaultKeys()
	if len(def.Ed25519) != 0 || len(def.RSA) != 1 || def.RSA[0].N.BitLen() != 4096 {
		t.Fatalf("default keys: %d Ed25519, %d RSA", len(def.Ed25519), len(def.RSA))
	}
	for _, tc := range []struct {
		name    string
		data    string
		ed, rsa int
		bad     bool
	}{
		{"Ed25519 PEM", string(edPEM), 1, 0, false},
		{"Ed25519 and RSA PEM", string(edPEM) + "\n" + rsaPEM(t), 1, 1, false},
		{"raw base64", base64.StdEncoding.EncodeToString(pub) + "\n", 1, 0, false},
		{"raw hex", hex.EncodeToString(pub), 1, 0, false},
		{"private key PEM", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0, 0, true},
		{"garbage", "not a key", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := webhook.ParseKeys([]byte(tc.data))
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v", err)
			}
			if !tc.bad && (len(k.Ed25519) != tc.ed || len(k.RSA) != tc.rsa) {
				t.Fatalf("%d Ed25519, %d RSA", len(k.Ed25519), len(k.RSA))
			}
		})
	}
	// A key file without an RSA key keeps HighLevel's published one for the
	// legacy header.
	file := filepath.Join(t.TempDir(), "ghl.pem")
	if err := os.WriteFile(file, edPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := webhook.LoadKeys(file)
	if err != nil || len(k.Ed25519) != 1 || len(k.RSA) != 1 || !k.RSA[0].Equal(def.RSA[0]) {
		t.Fatalf("LoadKeys: %+v %v", k, err)
	}
	if _, err := webhook.LoadKeys(filepath.Join(t.TempDir(), "none.pem")); err == nil {
		t.Fatal("a missing key file loads")
	}
}

func rsaPEM(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(webhook.DefaultKeys().RSA[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
