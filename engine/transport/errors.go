package transport

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Classes of failure. Every error Call returns wraps one of these sentinels
// or is (or wraps) a *ValidationError or *RateLimitedError; errors.Is and
// errors.As tell them apart.
var (
	// ErrUnauthorized: the credential was refused (401) and could not be
	// renewed, or the connection needs to be authorized again.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrScopeMissing: the credential lacks the operation's scope.
	ErrScopeMissing = errors.New("scope missing")
	// ErrForbidden: the credential may not reach this resource (403, or a
	// token of the wrong type, e.g. an agency token for a location call).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: the object asked for does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrTransient: a failure worth retrying later: 5xx, a timeout, a
	// dropped connection.
	ErrTransient = errors.New("transient failure")
	// ErrTooLarge: the response exceeded the size cap.
	ErrTooLarge = errors.New("response too large")
	// ErrConnection: the connection is unknown, paused, or not for the
	// operation's app.
	ErrConnection = errors.New("connection unusable")
	// ErrInput: the inputs cannot make a request (see catalog.InputError).
	ErrInput = errors.New("bad input")
)

// ValidationError is a request the API refused as invalid (400, 422), with
// the API's message(s).
type ValidationError struct {
	Status   int
	Messages []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("validation failed (%d): %s", e.Status, strings.Join(e.Messages, "; "))
}

// RateLimitedError is a 429: the burst budget (Daily false) or the daily
// budget (Daily true) is spent; RetryAfter says when to try again.
type RateLimitedError struct {
	Daily      bool
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	kind := "burst"
	if e.Daily {
		kind = "daily"
	}
	return fmt.Sprintf("rate limited (%s budget), retry after %s", kind, e.RetryAfter)
}

// Error is a failed call: the operation, the connection, the HTTP status
// (0 when no answer came) and the class of failure in Err. Its message never
// holds a credential.
type Error struct {
	Op         string
	Connection string
	Status     int
	// Message is the API's message, when it sent one.
	Message string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Connection != "" {
		b.WriteString(" via ")
		b.WriteString(e.Connection)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Message != "" {
			var ve *ValidationError
			if !errors.As(e.Err, &ve) {
				b.WriteString(": ")
				b.WriteString(e.Message)
			}
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the class of failure.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter returns how long to wait before retrying err: the API's
// Retry-After for rate limits, 0 when it gives none or err is not a rate
// limit.
func RetryAfter(err error) time.Duration {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return rl.RetryAfter
	}
	return 0
}

// Status returns the HTTP status of a failed call, 0 when none.
func Status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
