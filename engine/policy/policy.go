// Package policy decides what happens after a failure, for every part of
// the engine: a poll, a chain step, asynq's retry delay and its count of
// failures all ask Decide, so an error class gets one answer everywhere.
//
//	error                                              action
//	nil                                                Done
//	wraps asynq.SkipRetry (decided already)            Fail
//	*transport.RateLimitedError (429)                  Wait until its Retry-After
//	a Waiter (a chain of a paused connection)          Wait for its WaitFor
//	transport.ErrUnauthorized, ErrScopeMissing,
//	ErrForbidden (401, 403, a refused refresh)         Pause the connection
//	*transport.ValidationError (400, 422),
//	ErrNotFound, ErrInput, ErrConnection, ErrTooLarge,
//	*catalog.InputError, *actions.RenderError,
//	a step failure that no transport class covers     Fail to the archive
//	transport.ErrTransient (5xx, timeouts, resets),
//	context errors, anything else (Redis, an answer
//	that does not parse)                               Retry with backoff
package policy

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// Action is what happens after an error.
type Action int

// The actions, from the mildest.
const (
	// Done: there was no error.
	Done Action = iota
	// Retry: try again after an exponential backoff (Backoff), spending
	// one of the task's retries.
	Retry
	// Wait: try again after Decision.After without spending a retry (a
	// rate limit, a paused connection).
	Wait
	// Pause: the connection's credential or scopes are refused; only
	// fixing the connection helps, so its subscriptions pause.
	Pause
	// Fail: a retry makes the same request and meets the same answer; the
	// task goes to the archive with the error.
	Fail
)

func (a Action) String() string {
	switch a {
	case Done:
		return "done"
	case Retry:
		return "retry"
	case Wait:
		return "wait"
	case Pause:
		return "pause"
	case Fail:
		return "fail"
	}
	return "unknown"
}

// Decision is the answer for one error.
type Decision struct {
	Action Action
	// After is how long a Wait lasts, before jitter.
	After time.Duration
	// Jitter is the span of random delay added to After, so that many
	// tasks waiting for the same thing do not come back at once.
	Jitter time.Duration
}

// Waiter is an error that is waited out rather than counted as a failure:
// the task runs again after WaitFor.
type Waiter interface {
	error
	WaitFor() time.Duration
}

// Decide maps err to what happens next (see the package's table).
func Decide(err error) Decision {
	if err == nil {
		return Decision{Action: Done}
	}
	if errors.Is(err, asynq.SkipRetry) {
		return Decision{Action: Fail}
	}
	var rl *transport.RateLimitedError
	if errors.As(err, &rl) {
		if rl.RetryAfter <= 0 {
			// A spent budget without a Retry-After: look again in a minute.
			return Decision{Action: Wait, After: time.Minute, Jitter: time.Minute / 4}
		}
		return Decision{Action: Wait, After: rl.RetryAfter, Jitter: time.Second}
	}
	var w Waiter
	if errors.As(err, &w) {
		return Decision{Action: Wait, After: w.WaitFor(), Jitter: w.WaitFor() / 4}
	}
	if errors.Is(err, transport.ErrUnauthorized) || errors.Is(err, transport.ErrScopeMissing) ||
		errors.Is(err, transport.ErrForbidden) {
		return Decision{Action: Pause}
	}
	if permanent(err) {
		return Decision{Action: Fail}
	}
	return Decision{Action: Retry}
}

// permanent reports errors a retry cannot fix.
func permanent(err error) bool {
	var ve *transport.ValidationError
	var ie *catalog.InputError
	var re *actions.RenderError
	if errors.As(err, &ve) || errors.As(err, &ie) || errors.As(err, &re) {
		return true
	}
	for _, class := range []error{transport.ErrNotFound, transport.ErrInput, transport.ErrConnection, transport.ErrTooLarge} {
		if errors.Is(err, class) {
			return true
		}
	}
	// A step that failed outside the transport's classes (an unknown
	// operation, an answer that is not JSON) fails the same way again.
	var se *actions.StepError
	return errors.As(err, &se) && !errors.Is(err, transport.ErrTransient) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// Backoff is the delay before retry n+1 (n counts the retries so far):
// exponential from 2 s with full jitter in its upper half, capped at 30 min.
func Backoff(n int) time.Duration {
	d := 2 * time.Second << min(max(n, 0), 20)
	if d > 30*time.Minute || d <= 0 {
		d = 30 * time.Minute
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Delay is how long to wait before the next try after a decision reached
// on retry n: a Wait's time with its jitter, else Backoff.
func (d Decision) Delay(n int) time.Duration {
	if d.Action == Wait {
		j := time.Duration(0)
		if d.Jitter > 0 {
			j = time.Duration(rand.Int64N(int64(d.Jitter)))
		}
		return d.After + j
	}
	return Backoff(n)
}

// Counts reports whether a try that ended so spends one of the task's
// retries (asynq's IsFailure): everything but a Wait.
func (d Decision) Counts() bool { return d.Action != Wait && d.Action != Done }

// Permanent marks err as decided: Decide answers Fail for it (asynq sends
// the task to the archive without a retry).
func Permanent(err error) error {
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		return err
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() []error { return []error{e.err, asynq.SkipRetry} }
