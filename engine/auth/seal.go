package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables that supply sealing keys.
const (
	// EnvSecretKey holds one or more keys, newest first, separated by
	// commas; each is 32 bytes in base64 (standard or URL) or 64 hex digits.
	EnvSecretKey = "GHLFLOW_SECRET_KEY"
	// EnvSecretKeyFile names a file of keys, one a line, newest first
	// ('#' starts a comment).
	EnvSecretKeyFile = "GHLFLOW_SECRET_KEY_FILE"
)

// ErrNoKey means no sealing key was configured.
var ErrNoKey = errors.New("no secret key: set " + EnvSecretKey + " or " + EnvSecretKeyFile +
	" (generate one with 'ghlflow connect keygen'), or run in dev mode")

// sealPrefix starts every sealed value: a format version, then the id of
// the key that sealed it.
const sealPrefix = "gs1:"

// Keyring seals and opens secrets with AES-256-GCM. The first key seals;
// every key opens, so keys can be rotated: add the new key in front, run a
// reseal, then drop the old one. It is safe for concurrent use.
type Keyring struct {
	keys []sealKey
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// NewKeyring builds a keyring from 32-byte keys, newest first.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	k := &Keyring{}
	seen := map[string]bool{}
	for i, raw := range keys {
		if len(raw) != 32 {
			return nil, fmt.Errorf("secret key %d: %d bytes, want 32", i+1, len(raw))
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("secret key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secret key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(raw)
		id := hex.EncodeToString(sum[:4])
		if seen[id] {
			continue
		}
		seen[id] = true
		k.keys = append(k.keys, sealKey{id: id, aead: aead})
	}
	return k, nil
}

// ParseKeys reads keys written as base64 or hex, separated by commas,
// spaces or new lines; '#' starts a comment that runs to the end of a line.
func ParseKeys(s string) ([][]byte, error) {
	var out [][]byte
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			k, err := decodeKey(f)
			if err != nil {
				return nil, fmt.Errorf("secret key %d: %w", len(out)+1, err)
			}
			out = append(out, k)
		}
	}
	return out, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("%d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("not base64 or hex")
}

// GenerateKey returns a fresh random key in base64.
func GenerateKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// KeyConfig says where LoadKeyring looks for keys.
type KeyConfig struct {
	// Keys and File override the environment (EnvSecretKey and
	// EnvSecretKeyFile); keys from both are used, Keys first.
	Keys string
	File string
	// Dev allows running without a configured key: a key is generated
	// (and kept in DevFile so restarts can still open what was sealed),
	// with a loud warning. Never for production.
	Dev     bool
	DevFile string
	// Logger gets the dev-mode warning (default slog.Default()).
	Logger *slog.Logger
}

// LoadKeyring builds the keyring from cfg and the environment. Without any
// key it fails with ErrNoKey, unless cfg.Dev is set.
func LoadKeyring(cfg KeyConfig) (*Keyring, error) {
	keysText := cfg.Keys
	if keysText == "" {
		keysText = os.Getenv(EnvSecretKey)
	}
	file := cfg.File
	if file == "" {
		file = os.Getenv(EnvSecretKeyFile)
	}
	var keys [][]byte
	k, err := ParseKeys(keysText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvSecretKey, err)
	}
	keys = append(keys, k...)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("secret key file: %w", err)
		}
		k, err := ParseKeys(string(b))
		if err != nil {
			return nil, fmt.Errorf("secret key file %s: %w", file, err)
		}
		keys = append(keys, k...)
	}
	if len(keys) > 0 {
		return NewKeyring(keys...)
	}
	if !cfg.Dev {
		return nil, ErrNoKey
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dev := cfg.DevFile
	if dev == "" {
		dev = filepath.Join(os.TempDir(), "ghlflow-dev-secret.key")
	}
	if b, err := os.ReadFile(dev); err == nil {
		if k, err := ParseKeys(string(b)); err == nil && len(k) > 0 {
			log.Warn("DEV MODE: secrets are sealed with a development key kept in a plain file; do not use this for real credentials",
				"key_file", dev)
			return NewKeyring(k...)
		}
	}
	key := GenerateKey()
	if err := os.MkdirAll(filepath.Dir(dev), 0o700); err != nil {
		return nil, fmt.Errorf("dev key: %w", err)
	}
	if err := os.WriteFile(dev, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("dev key: %w", err)
	}
	log.Warn("DEV MODE: no "+EnvSecretKey+" set; generated a development key and stored it in a plain file. "+
		"Secrets sealed with it are only as safe as that file. Set "+EnvSecretKey+" for real use.", "key_file", dev)
	raw, _ := decodeKey(key)
	return NewKeyring(raw)
}

// Seal encrypts plain with the newest key; aad binds the result to its
// place (e.g. the connection id), so a sealed value moved elsewhere fails
// to open.
func (k *Keyring) Seal(plain, aad []byte) (string, error) {
	key := k.keys[0]
	nonce := make([]byte, key.aead.NonceSize(), key.aead.NonceSize()+len(plain)+key.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := key.aead.Seal(nonce, nonce, plain, aad)
	return sealPrefix + key.id + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// ErrSealed means a sealed value could not be opened: no key of the ring
// sealed it, or it was altered or moved.
var ErrSealed = errors.New("sealed secret cannot be opened")

// Open decrypts a value made by Seal with any key of the ring.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	id, data, ok := splitSealed(sealed)
	if !ok {
		return nil, fmt.Errorf("%w: not a sealed value", ErrSealed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSealed, err)
	}
	for _, key := range k.keys {
		if key.id != id {
			continue
		}
		n := key.aead.NonceSize()
		if len(raw) < n {
			return nil, fmt.Errorf("%w: too short", ErrSealed)
		}
		plain, err := key.aead.Open(nil, raw[:n], raw[n:], aad)
		if err != nil {
			return nil, fmt.Errorf("%w: authentication failed", ErrSealed)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("%w: sealed with key %s, which is not configured", ErrSealed, id)
}

// Current reports whether sealed was sealed with the newest key.
func (k *Keyring) Current(sealed string) bool {
	id, _, ok := splitSealed(sealed)
	return ok && id == k.keys[0].id
}

// KeyIDs returns the ids of the keys, newest first (short hashes, not the
// keys).
func (k *Keyring) KeyIDs() []string {
	out := make([]string, len(k.keys))
	for i, key := range k.keys {
		out[i] = key.id
	}
	return out
}

func splitSealed(s string) (id, data string, ok bool) {
	rest, ok := strings.CutPrefix(s, sealPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}
