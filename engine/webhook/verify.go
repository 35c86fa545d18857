// Package webhook receives the webhooks an app POSTs (HighLevel's signed
// events): it verifies each delivery's signature over the raw body, refuses
// stale, oversized and unsigned ones, and stores each event once, by its
// webhookId, in a Redis stream before it answers, so an accepted event
// survives the process. The engine routes the stored events to the
// recipes that listen to them.
package webhook

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Signature headers of HighLevel's webhooks.
const (
	// SignatureHeader carries an Ed25519 signature of the raw body, base64.
	SignatureHeader = "X-Ghl-Signature"
	// LegacySignatureHeader carries an RSA-SHA256 (PKCS #1 v1.5) signature
	// of the raw body, base64; HighLevel is retiring it.
	LegacySignatureHeader = "X-Wh-Signature"
)

// Verification failures.
var (
	// ErrUnsigned means the delivery carries no signature header.
	ErrUnsigned = errors.New("webhook is not signed")
	// ErrBadSignature means no key verifies the delivery's signature.
	ErrBadSignature = errors.New("webhook signature does not verify")
)

// ghlLegacyRSA is the RSA public key HighLevel publishes for x-wh-signature
// (docs/oauth/WebhookAuthentication.md).
//
//go:embed ghl_legacy_rsa.pem
var ghlLegacyRSA []byte

// Keys are the public keys deliveries are verified with: Ed25519 keys for
// x-ghl-signature, RSA keys for the legacy x-wh-signature.
type Keys struct {
	Ed25519 []ed25519.PublicKey
	RSA     []*rsa.PublicKey
}

// DefaultKeys are the keys HighLevel documents: its legacy RSA key. The
// Ed25519 key of x-ghl-signature is not in HighLevel's published docs; it
// comes from a key file (LoadKeys).
func DefaultKeys() Keys {
	k, err := ParseKeys(ghlLegacyRSA)
	if err != nil {
		panic("webhook: the embedded HighLevel key does not parse: " + err.Error())
	}
	return k
}

// LoadKeys reads a key file (see ParseKeys). Its Ed25519 keys verify
// x-ghl-signature; its RSA keys, when it has any, replace HighLevel's
// published RSA key for x-wh-signature.
func LoadKeys(path string) (Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Keys{}, fmt.Errorf("webhook key: %w", err)
	}
	k, err := ParseKeys(data)
	if err != nil {
		return Keys{}, fmt.Errorf("webhook key %s: %w", path, err)
	}
	if len(k.RSA) == 0 {
		k.RSA = DefaultKeys().RSA
	}
	return k, nil
}

// ParseKeys reads every PEM "PUBLIC KEY" block of data (Ed25519 or RSA),
// or, without PEM, one raw 32-byte Ed25519 key in base64 or hex (as
// HighLevel's SDK accepts it).
func ParseKeys(data []byte) (Keys, error) {
	var k Keys
	rest := data
	blocks := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		if b.Type != "PUBLIC KEY" {
			return k, fmt.Errorf("PEM block %d is a %q, want a PUBLIC KEY", blocks, b.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return k, fmt.Errorf("PEM block %d: %w", blocks, err)
		}
		switch pk := pub.(type) {
		case ed25519.PublicKey:
			k.Ed25519 = append(k.Ed25519, pk)
		case *rsa.PublicKey:
			k.RSA = append(k.RSA, pk)
		default:
			return k, fmt.Errorf("PEM block %d: %T keys do not sign webhooks", blocks, pub)
		}
	}
	if blocks > 0 {
		return k, nil
	}
	raw := strings.TrimSpace(string(data))
	for _, decode := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, hex.DecodeString} {
		if b, err := decode(raw); err == nil && len(b) == ed25519.PublicKeySize {
			k.Ed25519 = append(k.Ed25519, ed25519.PublicKey(b))
			return k, nil
		}
	}
	return k, errors.New("no PEM public key, and not a 32-byte Ed25519 key in base64 or hex")
}

// Verify checks a delivery's signature over its raw body: x-ghl-signature
// with the Ed25519 keys, else (or when that fails) x-wh-signature with the
// RSA keys. It returns ErrUnsigned or ErrBadSignature.
func (k Keys) Verify(h http.Header, body []byte) error {
	ed, legacy := h.Get(SignatureHeader), h.Get(LegacySignatureHeader)
	if ed == "" && legacy == "" {
		return ErrUnsigned
	}
	if ed != "" {
		if sig, err := base64.StdEncoding.DecodeString(ed); err == nil {
			for _, pk := range k.Ed25519 {
				if ed25519.Verify(pk, body, sig) {
					return nil
				}
			}
		}
	}
	if legacy != "" {
		if sig, err := base64.StdEncoding.DecodeString(legacy); err == nil {
			sum := sha256.Sum256(body)
			for _, pk := range k.RSA {
				if rsa.VerifyPKCS1v15(pk, crypto.SHA256, sum[:], sig) == nil {
					return nil
				}
			}
		}
	}
	return ErrBadSignature
}
