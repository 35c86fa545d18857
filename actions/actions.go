// Package actions runs the action side of a recipe: it renders each step's
// input from the trigger item and the outputs of earlier steps, coerces the
// rendered text to the operation's input types, calls the operation and
// extracts its useful output.
package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog"
)

// Caller performs one catalog operation through a connection and returns the
// response body; engine/transport implements it.
type Caller interface {
	Call(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, error)
}

// Data is the template data of a step: {trigger, steps, recipe}.
func Data(recipe string, trigger any, steps []any) map[string]any {
	if steps == nil {
		steps = []any{}
	}
	return map[string]any{"trigger": trigger, "steps": steps, "recipe": recipe}
}

// Binding is what a recipe's roles and the .tenant and .connection of its
// templates resolve to for one tenant. The zero Binding reads roles as
// connection ids and adds no data.
type Binding struct {
	// Tenant is the .tenant of templates (nil: none).
	Tenant map[string]any
	// Connection returns the connection of a role (nil: the role is the
	// connection id).
	Connection func(role string) (string, bool)
	// Describe returns the .connection of templates for a connection of
	// app (nil, or a nil map: none).
	Describe func(ctx context.Context, connection, app string) (map[string]any, error)
	// Rendered, when set, is told each step's rendered input before the
	// step's call goes out (the run history keeps it).
	Rendered func(step int, input map[string]any)
}

// connection is the connection a role names under the binding.
// ConnectionOf returns the connection a role stands for (the role itself
// when the binding does not know it).
func (b Binding) ConnectionOf(role string) string { return b.connection(role) }

func (b Binding) connection(role string) string {
	if b.Connection != nil {
		if c, ok := b.Connection(role); ok {
			return c
		}
	}
	return role
}

// Runner runs the steps of recipes against a catalog through a Caller.
type Runner struct {
	Catalog *catalog.Catalog
	Caller  Caller
	// OnWrite, when set, is told of every step that wrote (an action that
	// is not a GET); the engine keeps write fingerprints with it.
	OnWrite func(ctx context.Context, w Write)
}

// StepError is a failure of one step before or during its call; Err is the
// cause (a template error, a *catalog.InputError or the Caller's error).
type StepError struct {
	Recipe string
	Step   int
	Op     string
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("recipe %s step %d (%s): %v", e.Recipe, e.Step, e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// Filter evaluates the recipe's filter for a trigger item: true when the
// recipe has none or it renders to "true".
func Filter(r *catalog.Recipe, trigger any) (bool, error) {
	return FilterFor(r, Binding{}, trigger)
}

// FilterFor is Filter with the tenant of b in the data.
func FilterFor(r *catalog.Recipe, b Binding, trigger any) (bool, error) {
	if r.Filter == nil {
		return true, nil
	}
	data := Data(r.Name, trigger, nil)
	if b.Tenant != nil {
		data["tenant"] = b.Tenant
	}
	ok, err := truth(r.Filter, data)
	if err != nil {
		return false, fmt.Errorf("recipe %s filter: %w", r.Name, err)
	}
	return ok, nil
}

// truth renders a filter or when: template: "true" or "false" (spaces
// around allowed), anything else is an error.
func truth(v *catalog.Value, data map[string]any) (bool, error) {
	out, err := v.Render(data)
	if err != nil {
		return false, err
	}
	switch x := out.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("rendered %q, want true or false", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("rendered %T, want true or false", out)
}

// Render renders step i's input for the data and coerces it to the
// operation's input types.
func Render(op *catalog.Operation, st *catalog.Step, data map[string]any) (map[string]any, error) {
	in := make(map[string]any, len(st.Input))
	for name, v := range st.Input {
		r, err := v.Render(data)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		c, err := Coerce(op.Input(name), r)
		if err != nil {
			return nil, err
		}
		in[name] = c
	}
	return in, nil
}

// Coerce turns a rendered string into the input's declared type: number and
// integer parse as numbers, boolean as true/false, array and object as JSON;
// datetime and string stay text; an empty string is no value (nil).
// Non-string values pass through. It is the one conversion of step inputs
// and trigger params; its errors name the input.
func Coerce(in *catalog.Input, v any) (any, error) {
	s, ok := v.(string)
	if !ok || in == nil {
		return v, nil
	}
	out, err := coerce(in, s)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", in.Name, err)
	}
	return out, nil
}

func coerce(in *catalog.Input, s string) (any, error) {
	t := strings.TrimSpace(s)
	switch in.Type {
	case "number":
		if t == "" {
			return nil, nil
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case "integer":
		if t == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(t, 64)
			if ferr != nil || f != float64(int64(f)) {
				return nil, fmt.Errorf("%q is not an integer", s)
			}
			n = int64(f)
		}
		return n, nil
	case "boolean":
		if t == "" {
			return nil, nil
		}
		b, err := strconv.ParseBool(t)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean", s)
		}
		return b, nil
	case "array", "object":
		if t == "" {
			return nil, nil
		}
		var out any
		if err := json.Unmarshal([]byte(t), &out); err != nil {
			return nil, fmt.Errorf("%q is not JSON %s", s, in.Type)
		}
		switch out.(type) {
		case []any:
			if in.Type == "array" {
				return out, nil
			}
		case map[string]any:
			if in.Type == "object" {
				return out, nil
			}
		}
		return nil, fmt.Errorf("%q is not a JSON %s", s, in.Type)
	}
	return s, nil
}

// Output extracts a step's output from a response: the op's Output path, or
// the whole response, decoded.
func Output(op *catalog.Operation, body []byte) (any, error) {
	raw := body
	if op.Output != "" {
		r := gjson.GetBytes(body, op.Output)
		if r.Exists() {
			raw = []byte(r.Raw)
		}
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return map[string]any{}, nil
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s output: %w", op.ID, err)
	}
	return out, nil
}

// Connection is the connection step st uses: its own, or the trigger's.
func Connection(r *catalog.Recipe, st *catalog.Step) string {
	if st.Connection != "" {
		return st.Connection
	}
	return r.Trigger.Connection
}

// RunStep runs step i of recipe r with the outputs of the steps before it
// and returns its output. Failures are *StepError values wrapping the cause.
func (rn *Runner) RunStep(ctx context.Context, r *catalog.Recipe, i int, trigger any, steps []any) (any, error) {
	return rn.RunStepFor(ctx, r, i, Binding{}, trigger, steps)
}

// RunStepFor is RunStep for the tenant of b: the step's role names its
// connection, and templates see .tenant and .connection. A step whose
// when: renders false is not called; its output is Skipped.
func (rn *Runner) RunStepFor(ctx context.Context, r *catalog.Recipe, i int, b Binding, trigger any, steps []any) (any, error) {
	out, _, err := rn.RunStepWhen(ctx, r, i, b, trigger, steps)
	return out, err
}

// Skipped is the output of a step skipped by its when: an empty object, so
// later templates read its fields as empty.
func Skipped() map[string]any { return map[string]any{} }

// RunStepWhen is RunStepFor that also reports whether the step ran (false:
// its when: rendered false and the output is Skipped).
func (rn *Runner) RunStepWhen(ctx context.Context, r *catalog.Recipe, i int, b Binding, trigger any, steps []any) (any, bool, error) {
	st := &r.Steps[i]
	op := rn.Catalog.Op(st.Op)
	if op == nil {
		return nil, false, &StepError{Recipe: r.Name, Step: i, Op: st.Op, Err: fmt.Errorf("unknown operation")}
	}
	conn := b.connection(Connection(r, st))
	data := Data(r.Name, trigger, steps)
	if b.Tenant != nil {
		data["tenant"] = b.Tenant
	}
	if b.Describe != nil {
		cd, err := b.Describe(ctx, conn, op.App)
		if err != nil {
			return nil, false, &StepError{Recipe: r.Name, Step: i, Op: st.Op, Err: err}
		}
		if cd != nil {
			data["connection"] = cd
		}
	}
	if st.When != nil {
		run, err := truth(st.When, data)
		if err != nil {
			return nil, false, &StepError{Recipe: r.Name, Step: i, Op: st.Op, Err: &RenderError{Err: fmt.Errorf("when: %w", err)}}
		}
		if !run {
			return Skipped(), false, nil
		}
	}
	in, err := Render(op, st, data)
	if err != nil {
		return nil, false, &StepError{Recipe: r.Name, Step: i, Op: st.Op, Err: &RenderError{Err: err}}
	}
	if b.Rendered != nil {
		b.Rendered(i, in)
	}
	body, err := rn.Caller.Call(ctx, conn, op, in)
	if err != nil {
		return nil, false, &StepError{Recipe: r.Name, Step: i, Op: st.Op, Err: err}
	}
	out, err := Output(op, body)
	if err != nil {
		return nil, false, &StepError{Recipe: r.Name, Step: i, Op: st.Op, Err: err}
	}
	if rn.OnWrite != nil && IsWrite(op) {
		rn.OnWrite(ctx, Write{Connection: conn, Source: b.connection(r.Trigger.Connection), Op: op, Input: in, Output: out})
	}
	return out, true, nil
}

// IsWrite reports whether an action changes data: not a GET, and not a
// search under a read-only scope (ghl.contacts.find is a POST that reads).
func IsWrite(op *catalog.Operation) bool {
	return op.Method != "GET" && !strings.HasSuffix(op.Scope, ".readonly")
}

// Write is what a step wrote, as Runner.OnWrite sees it.
type Write struct {
	Connection string
	// Source is the connection of the recipe's trigger: where the change
	// written came from.
	Source string
	Op     *catalog.Operation
	Input  map[string]any
	Output any
}

// RenderError is a step input that could not be rendered or coerced; a
// retry cannot fix it.
type RenderError struct{ Err error }

func (e *RenderError) Error() string { return "render: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RenderError) Unwrap() error { return e.Err }
