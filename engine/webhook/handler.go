package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/tidwall/gjson"
)

// Defaults of a Handler.
const (
	// DefaultMaxBytes is the largest body accepted (1 MB).
	DefaultMaxBytes = 1 << 20
	// DefaultMaxAge is how old a delivery's timestamp may be (5 minutes,
	// as HighLevel's replay protection advises); one more than that ahead
	// of the clock is refused too.
	DefaultMaxAge = 5 * time.Minute
)

// Handler serves POST /webhooks/ghl: it verifies, refuses or stores each
// delivery and answers 200 only once the event is in Redis.
//
//	200  stored, or a webhookId stored before
//	400  not a JSON object, or a stale or missing timestamp
//	401  unsigned, or no key verifies the signature
//	405  not a POST
//	413  a body over MaxBytes
//	429  the event could not be stored (Redis); HighLevel retries a 429
type Handler struct {
	Keys  Keys
	Store *Store
	// MaxBytes and MaxAge default to DefaultMaxBytes and DefaultMaxAge.
	MaxBytes int64
	MaxAge   time.Duration
	// Metrics and Logger are optional.
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a webhook event", http.StatusMethodNotAllowed)
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	received := now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBytes()))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.refuse(w, "", ResultOversized, http.StatusRequestEntityTooLarge, "body over the size limit")
		return
	case err != nil:
		h.refuse(w, "", ResultMalformed, http.StatusBadRequest, "cannot read the body")
		return
	}
	if err := h.Keys.Verify(r.Header, body); err != nil {
		result := ResultBadSignature
		if errors.Is(err, ErrUnsigned) {
			result = ResultUnsigned
		}
		h.refuse(w, "", result, http.StatusUnauthorized, err.Error())
		return
	}
	// Signed by the sender from here: its fields may be trusted.
	ev, status, result, msg := h.event(body, received)
	if status != 0 {
		h.refuse(w, ev.Type, result, status, msg)
		return
	}
	dup, err := h.Store.Accept(r.Context(), ev)
	if err != nil {
		h.logger().Error("webhook not stored; asking the sender to retry", "type", ev.Type, "webhook", ev.WebhookID, "err", err)
		w.Header().Set("Retry-After", "10")
		h.refuse(w, ev.Type, ResultUnavailable, http.StatusTooManyRequests, "cannot store the event now")
		return
	}
	if dup {
		h.Metrics.Count(ev.Type, ResultDuplicate)
	} else {
		h.Metrics.Count(ev.Type, ResultAccepted)
	}
	w.WriteHeader(http.StatusOK)
}

// event reads a verified body into an Event, or says why it is refused
// (a non-zero status).
func (h *Handler) event(body []byte, received time.Time) (ev Event, status int, result, msg string) {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return ev, http.StatusBadRequest, ResultMalformed, "the body is not a JSON object"
	}
	f := gjson.GetManyBytes(body, "type", "locationId", "webhookId", "timestamp")
	ev = Event{Type: f[0].String(), Location: f[1].String(), WebhookID: f[2].String(), Body: body, Received: received}
	if ev.WebhookID == "" {
		sum := sha256.Sum256(body)
		ev.WebhookID = "sha256:" + hex.EncodeToString(sum[:16])
	}
	ts, err := time.Parse(time.RFC3339Nano, f[3].String())
	if err != nil {
		return ev, http.StatusBadRequest, ResultStale, "the event has no RFC 3339 timestamp"
	}
	maxAge := h.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if age := received.Sub(ts); age > maxAge || age < -maxAge {
		return ev, http.StatusBadRequest, ResultStale, "the event's timestamp is outside the accepted window"
	}
	return ev, 0, "", ""
}

func (h *Handler) refuse(w http.ResponseWriter, typ, result string, status int, msg string) {
	h.Metrics.Count(typ, result)
	h.logger().Debug("webhook refused", "type", typ, "result", result, "status", status, "why", msg)
	http.Error(w, msg, status)
}

func (h *Handler) maxBytes() int64 {
	if h.MaxBytes > 0 {
		return h.MaxBytes
	}
	return DefaultMaxBytes
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
