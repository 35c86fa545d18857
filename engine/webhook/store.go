package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// SeenTTL is how long a webhookId is remembered after its delivery was
// accepted: well beyond MaxAge, after which a delivery is refused as stale
// anyway.
const SeenTTL = time.Hour

// Event is one accepted webhook delivery.
type Event struct {
	// Entry is the event's stream entry id ("" before it is stored).
	Entry string
	// WebhookID is the delivery's webhookId (or a hash of its body when it
	// has none).
	WebhookID string
	// Type and Location are the payload's type and locationId.
	Type, Location string
	// Body is the raw payload.
	Body []byte
	// Received is when the delivery was accepted.
	Received time.Time
}

// Store keeps accepted events in a Redis stream until they are processed.
// Every process that shares the Redis and prefix reads from one consumer
// group: each event goes to one process, and one that dies leaves its
// events pending for another to claim.
type Store struct {
	rdb  redis.UniversalClient
	keys rdb.Keys
}

// NewStore returns the event store under prefix ("" = the default).
func NewStore(c redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: c, keys: rdb.NewKeys(prefix)}
}

// Accept stores ev unless its webhookId was accepted before (dup), in one
// script call: once it returns without error the event is in Redis.
func (s *Store) Accept(ctx context.Context, ev Event) (dup bool, err error) {
	res, err := rdb.WebhookAccept.Run(ctx, s.rdb, []string{s.keys.WebhookSeen(ev.WebhookID), s.keys.WebhookEvents()},
		SeenTTL.Milliseconds(), "id", ev.WebhookID, "type", ev.Type, "loc", ev.Location,
		"at", ev.Received.UnixMicro(), "body", ev.Body).Result()
	if rdb.IsNil(err) || (err == nil && res == nil) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("store webhook %s: %w", ev.WebhookID, err)
	}
	return false, nil
}

// Group creates the consumer group when it does not exist yet.
func (s *Store) Group(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.keys.WebhookEvents(), rdb.WebhookGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("webhook consumer group: %w", err)
	}
	return nil
}

// Read returns up to n events for consumer: first those other consumers
// left pending for longer than idle (a process that died mid-way), then
// new ones, waiting up to block for them.
func (s *Store) Read(ctx context.Context, consumer string, n int, idle, block time.Duration) ([]Event, error) {
	key := s.keys.WebhookEvents()
	claimed, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: key, Group: rdb.WebhookGroup,
		Consumer: consumer, MinIdle: idle, Start: "0-0", Count: int64(n)}).Result()
	if err != nil && !rdb.IsNil(err) {
		return nil, fmt.Errorf("claim webhooks: %w", err)
	}
	if len(claimed) > 0 {
		return events(claimed), nil
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: rdb.WebhookGroup, Consumer: consumer,
		Streams: []string{key, ">"}, Count: int64(n), Block: block}).Result()
	if rdb.IsNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	var out []Event
	for _, st := range res {
		out = append(out, events(st.Messages)...)
	}
	return out, nil
}

// Done acknowledges processed events and deletes them.
func (s *Store) Done(ctx context.Context, entries ...string) error {
	if len(entries) == 0 {
		return nil
	}
	args := make([]any, 0, len(entries)+1)
	args = append(args, rdb.WebhookGroup)
	for _, e := range entries {
		args = append(args, e)
	}
	if err := rdb.WebhookDone.Run(ctx, s.rdb, []string{s.keys.WebhookEvents()}, args...).Err(); err != nil {
		return fmt.Errorf("ack webhooks: %w", err)
	}
	return nil
}

// Len is the number of events stored and not yet processed.
func (s *Store) Len(ctx context.Context) (int64, error) {
	n, err := s.rdb.XLen(ctx, s.keys.WebhookEvents()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("webhook backlog: %w", err)
	}
	return n, nil
}

func events(msgs []redis.XMessage) []Event {
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		ev := Event{Entry: m.ID}
		ev.WebhookID, _ = m.Values["id"].(string)
		ev.Type, _ = m.Values["type"].(string)
		ev.Location, _ = m.Values["loc"].(string)
		if b, ok := m.Values["body"].(string); ok {
			ev.Body = []byte(b)
		}
		if at, ok := m.Values["at"].(string); ok {
			if us, err := strconv.ParseInt(at, 10, 64); err == nil {
				ev.Received = time.UnixMicro(us)
			}
		}
		out = append(out, ev)
	}
	return out
}
