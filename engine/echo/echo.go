// Package echo keeps two-way syncs from looping. After a step writes an
// object, Record keeps a fingerprint under (connection, object id): the
// scalar fields the step sent. When a trigger of the same connection later
// polls an item with that id whose fields still hold the values written,
// Match reports it as the echo of ghlflow's own write, once per
// subscription, and the engine skips the item instead of syncing it back.
// Only a recipe that would send the change back to where it came from (one
// whose steps write through the connection the writing recipe polled)
// skips the echo: a contact that a referral recipe created in GHL still
// fires a GHL "new contact" recipe that writes to GHL itself.
// The echo of a write that created the object reaches every such trigger;
// that of an update only triggers that fire on changes (dedup updated or
// changed): for a trigger of new items, an object it meets for the first
// time is new to it, whoever changed it last.
// A change made by someone else alters a written field, or comes after the
// subscription saw the echo, and runs as usual. Fingerprints live for the window (the
// dedup window, 24 h by default).
package echo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// DefaultWindow is how long a fingerprint waits for its echo.
const DefaultWindow = 24 * time.Hour

// Store keeps write fingerprints in Redis.
type Store struct {
	Redis redis.UniversalClient
	// Prefix goes before the keys (rdb.DefaultPrefix when empty).
	Prefix string
	// Window is how long a fingerprint lives (DefaultWindow when 0).
	Window time.Duration
}

func (s *Store) key(conn, id string) string { return rdb.NewKeys(s.Prefix).Echo(conn, id) }

// Record keeps the fingerprint of a write of object id through conn:
// the scalar values of fields (nested names count by their last part, so
// member.firstName is firstName).
// source is the connection the change came from (the writing recipe's
// trigger; "" = unknown, which any recipe's echo matches).
// created says the write made the object.
func (s *Store) Record(ctx context.Context, conn, id, source string, created bool, fields map[string]any) error {
	fp := map[string]string{}
	for k, v := range fields {
		if str, ok := scalar(v); ok && str != "" {
			fp[lastPart(k)] = str
		}
	}
	b, err := json.Marshal(fp)
	if err != nil {
		return fmt.Errorf("echo %s %s: %w", conn, id, err)
	}
	w := s.Window
	if w <= 0 {
		w = DefaultWindow
	}
	key := s.key(conn, id)
	p := s.Redis.TxPipeline()
	p.Del(ctx, key)
	p.HSet(ctx, key, fieldFingerprint, b, fieldCreated, created, fieldSource, source)
	p.Expire(ctx, key, w)
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("echo %s %s: %w", conn, id, err)
	}
	return nil
}

// fieldFingerprint holds the written fields; "seen:SUB" marks a
// subscription that has had its echo.
const fieldFingerprint = "fp"

// fieldCreated is "1" when the write created the object.
const fieldCreated = "created"

// fieldSource is the connection the written change came from.
const fieldSource = "src"

// Match reports whether item (object id polled through conn by
// subscription sub) is the echo of a recorded write: the write created the
// object or sub fires on changes, every written field the item carries has
// the written value, sub writes back to the change's source (writesTo
// reports whether sub's steps write through a connection), and sub has not
// had this echo yet.
func (s *Store) Match(ctx context.Context, conn, id, sub string, changes bool, writesTo func(conn string) bool, item map[string]any) (bool, error) {
	key := s.key(conn, id)
	vals, err := s.Redis.HMGet(ctx, key, fieldFingerprint, fieldCreated, "seen:"+sub, fieldSource).Result()
	if err != nil {
		return false, fmt.Errorf("echo %s %s: %w", conn, id, err)
	}
	raw, ok := vals[0].(string)
	if !ok || vals[2] != nil || (!changes && vals[1] != "1") {
		return false, nil
	}
	if src, _ := vals[3].(string); src != "" && writesTo != nil && !writesTo(src) {
		return false, nil // sub would not send the change back to its source
	}
	var fp map[string]string
	if err := json.Unmarshal([]byte(raw), &fp); err != nil {
		return false, fmt.Errorf("echo %s %s: %w", conn, id, err)
	}
	for k, want := range fp {
		v, ok := item[k]
		if !ok {
			continue
		}
		got, ok := scalar(v)
		if !ok || !same(got, want) {
			return false, nil
		}
	}
	if err := s.Redis.HSet(ctx, key, "seen:"+sub, 1).Err(); err != nil {
		return true, fmt.Errorf("echo %s %s: %w", conn, id, err)
	}
	return true, nil
}

// scalar renders a string, number or boolean as text.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// same compares a polled value with a written one as the APIs echo them:
// case aside, as the same instant, or as the same number.
func same(got, want string) bool {
	if strings.EqualFold(strings.TrimSpace(got), strings.TrimSpace(want)) {
		return true
	}
	if a, err := time.Parse(time.RFC3339Nano, got); err == nil {
		if b, err := time.Parse(time.RFC3339Nano, want); err == nil {
			return a.Equal(b)
		}
	}
	a, err1 := strconv.ParseFloat(got, 64)
	b, err2 := strconv.ParseFloat(want, 64)
	return err1 == nil && err2 == nil && math.Abs(a-b) < 1e-9
}

func lastPart(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// Forget deletes every fingerprint of connection conn (a removed tenant's
// connection leaves none).
func Forget(ctx context.Context, rdb redis.UniversalClient, prefix, conn string) error {
	iter := rdb.Scan(ctx, 0, echoPattern(prefix, conn), 1000).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return fmt.Errorf("echo forget %s: %w", conn, err)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("echo forget %s: %w", conn, err)
	}
	return nil
}

// echoPattern matches the fingerprints of conn.
func echoPattern(prefix, conn string) string { return rdb.NewKeys(prefix).Echo(conn, "*") }
