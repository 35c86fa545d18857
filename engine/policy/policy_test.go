package policy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/actions"
	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/policy"
	"github.com/ghlflow/ghlflow/engine/transport"
)

// waiting is a Waiter, as a chain of a paused connection is.
type waiting struct{ d time.Duration }

func (w waiting) Error() string          { return "connection acme is paused" }
func (w waiting) WaitFor() time.Duration { return w.d }

// call wraps a class of failure as the transport returns it.
func call(status int, class error) error {
	return &transport.Error{Op: "ghl.contacts.get", Connection: "acme", Status: status, Err: class}
}

// step wraps a failure as a chain step returns it.
func step(err error) error {
	return &actions.StepError{Recipe: "r", Step: 1, Op: "ghl.contacts.tasks.create", Err: err}
}

// TestDecide covers every typed error class, as a poll meets it (the
// transport's error) and as a chain meets it (inside a step's error).
func TestDecide(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		action policy.Action
		after  time.Duration
	}{
		{"no error", nil, policy.Done, 0},
		{"5xx", call(503, transport.ErrTransient), policy.Retry, 0},
		{"timeout", call(0, fmt.Errorf("%w: timeout", transport.ErrTransient)), policy.Retry, 0},
		{"408", call(408, transport.ErrTransient), policy.Retry, 0},
		{"429 burst", call(429, &transport.RateLimitedError{RetryAfter: 7 * time.Second}), policy.Wait, 7 * time.Second},
		{"429 daily", call(429, &transport.RateLimitedError{Daily: true, RetryAfter: 3 * time.Hour}), policy.Wait, 3 * time.Hour},
		{"429 without retry-after", call(429, &transport.RateLimitedError{Daily: true}), policy.Wait, time.Minute},
		{"401 refused", call(401, transport.ErrUnauthorized), policy.Pause, 0},
		{"401 scope", call(401, transport.ErrScopeMissing), policy.Pause, 0},
		{"403", call(403, transport.ErrForbidden), policy.Pause, 0},
		{"404", call(404, transport.ErrNotFound), policy.Fail, 0},
		{"422", call(422, &transport.ValidationError{Status: 422, Messages: []string{"bad"}}), policy.Fail, 0},
		{"400", call(400, &transport.ValidationError{Status: 400, Messages: []string{"bad"}}), policy.Fail, 0},
		{"too large", call(200, transport.ErrTooLarge), policy.Fail, 0},
		{"unknown connection", call(0, transport.ErrConnection), policy.Fail, 0},
		{"bad input", call(0, fmt.Errorf("%w: %w", transport.ErrInput, &catalog.InputError{Op: "x", Input: "id", Msg: "is required"})),
			policy.Fail, 0},
		{"input error alone", &catalog.InputError{Op: "x", Input: "id", Msg: "is required"}, policy.Fail, 0},
		{"render", &actions.RenderError{Err: errors.New(`input completed: "yes" is not a boolean`)}, policy.Fail, 0},
		{"decided already", fmt.Errorf("chain: %w", asynq.SkipRetry), policy.Fail, 0},
		{"marked permanent", policy.Permanent(errors.New("bad payload")), policy.Fail, 0},
		{"paused connection", waiting{time.Minute}, policy.Wait, time.Minute},
		{"paused connection past its hold", fmt.Errorf("%w; gave up: %w", waiting{time.Minute}, asynq.SkipRetry), policy.Fail, 0},
		{"redis", errors.New("dial tcp 127.0.0.1:6379: connection refused"), policy.Retry, 0},
		{"canceled", context.Canceled, policy.Retry, 0},
		{"answer not JSON", errors.New("poll x page 1: response is not JSON"), policy.Retry, 0},

		{"step 5xx", step(call(502, transport.ErrTransient)), policy.Retry, 0},
		{"step 429", step(call(429, &transport.RateLimitedError{RetryAfter: time.Second})), policy.Wait, time.Second},
		{"step 401", step(call(401, transport.ErrUnauthorized)), policy.Pause, 0},
		{"step 403 scope", step(call(401, transport.ErrScopeMissing)), policy.Pause, 0},
		{"step 404", step(call(404, transport.ErrNotFound)), policy.Fail, 0},
		{"step 422", step(call(422, &transport.ValidationError{Status: 422})), policy.Fail, 0},
		{"step too large", step(call(200, transport.ErrTooLarge)), policy.Fail, 0},
		{"step render", step(&actions.RenderError{Err: errors.New("no")}), policy.Fail, 0},
		{"step unknown operation", step(errors.New("unknown operation")), policy.Fail, 0},
		{"step output not JSON", step(errors.New("output: invalid character")), policy.Fail, 0},
		{"step canceled", step(context.Canceled), policy.Retry, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := policy.Decide(tc.err)
			if d.Action != tc.action || d.After != tc.after {
				t.Fatalf("Decide(%v) = %s after %s, want %s after %s", tc.err, d.Action, d.After, tc.action, tc.after)
			}
			if got, want := d.Counts(), tc.action != policy.Wait && tc.action != policy.Done; got != want {
				t.Fatalf("Counts = %v", got)
			}
			if tc.action == policy.Wait {
				if delay := d.Delay(5); delay < tc.after || delay > tc.after+tc.after/4+time.Second {
					t.Fatalf("Delay = %s, want about %s", delay, tc.after)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	prev := time.Duration(0)
	for n := range 30 {
		d := policy.Backoff(n)
		lo := min(2*time.Second<<min(n, 20), 30*time.Minute) / 2
		if d < lo || d > 2*lo || d > 30*time.Minute {
			t.Fatalf("Backoff(%d) = %s, want %s..%s", n, d, lo, 2*lo)
		}
		if n < 5 && d < prev/2 {
			t.Fatalf("Backoff(%d) = %s shrank from %s", n, d, prev)
		}
		prev = d
	}
}

// TestPermanent: a marked error keeps its message and its cause.
func TestPermanent(t *testing.T) {
	cause := call(404, transport.ErrNotFound)
	err := policy.Permanent(cause)
	if err.Error() != cause.Error() || !errors.Is(err, transport.ErrNotFound) || !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("Permanent: %v", err)
	}
	if policy.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is an error")
	}
}
