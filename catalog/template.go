package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// Value is a compiled recipe value: a literal, a text with Go templates, or
// a mapping or list of values. Templates see the data {trigger, steps,
// recipe}: .trigger is the polled item, .steps.N the output of step N.
type Value struct {
	literal any
	tmpl    *template.Template // for a string with {{ }}
	mapping map[string]*Value
	list    []*Value
	refs    []int // step numbers the value refers to, for validation
}

// TemplateFuncs returns the functions recipe templates may call. They are
// documented in the README's recipe reference.
func TemplateFuncs() template.FuncMap {
	return template.FuncMap{
		"now":        func() time.Time { return time.Now().UTC() },
		"addDays":    func(n int, t any) (time.Time, error) { return addDur(t, time.Duration(n)*24*time.Hour) },
		"addHours":   func(n int, t any) (time.Time, error) { return addDur(t, time.Duration(n)*time.Hour) },
		"addMinutes": func(n int, t any) (time.Time, error) { return addDur(t, time.Duration(n)*time.Minute) },
		"formatTime": func(layout string, t any) (string, error) {
			tt, err := toTime(t)
			if err != nil {
				return "", err
			}
			return tt.Format(goLayout(layout)), nil
		},
		"parseTime": toTime,
		"epochMs": func(t any) (int64, error) {
			tt, err := toTime(t)
			return tt.UnixMilli(), err
		},
		"default": func(def, v any) any {
			if isEmpty(v) {
				return def
			}
			return v
		},
		"lower":    func(v any) string { return strings.ToLower(toString(v)) },
		"upper":    func(v any) string { return strings.ToUpper(toString(v)) },
		"trim":     func(v any) string { return strings.TrimSpace(toString(v)) },
		"toString": toString,
		"join": func(sep string, v any) string {
			list, _ := v.([]any)
			parts := make([]string, len(list))
			for i, e := range list {
				parts[i] = toString(e)
			}
			return strings.Join(parts, sep)
		},
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"contains": func(sub string, v any) bool {
			if list, ok := v.([]any); ok {
				for _, e := range list {
					if toString(e) == sub {
						return true
					}
				}
				return false
			}
			return strings.Contains(toString(v), sub)
		},
		"findBy": findBy,
	}
}

// findBy returns the first object of list whose field (a dotted path)
// reads as value, or nil: `{{ (findBy "body" "marker" .steps.1).id }}`.
// A list that is not one (a step skipped) finds nothing.
func findBy(field string, value, list any) any {
	items, _ := list.([]any)
	for _, it := range items {
		v := it
		for _, name := range strings.Split(field, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[name]
		}
		if v != nil && toString(v) == toString(value) {
			return it
		}
	}
	return nil
}

// goLayout maps the names rfc3339, date and datetime to Go layouts; any other
// text is used as a Go layout.
func goLayout(l string) string {
	switch l {
	case "rfc3339":
		return time.RFC3339
	case "rfc3339ms":
		return "2006-01-02T15:04:05.000Z07:00"
	case "date":
		return time.DateOnly
	case "datetime":
		return time.DateTime
	}
	return l
}

func addDur(t any, d time.Duration) (time.Time, error) {
	tt, err := toTime(t)
	return tt.Add(d), err
}

// toTime reads a time from a time.Time, an RFC 3339 or "YYYY-MM-DD[ HH:MM:SS]"
// text, or epoch milliseconds.
func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case float64:
		return time.UnixMilli(int64(x)).UTC(), nil
	case int64:
		return time.UnixMilli(x).UTC(), nil
	case int:
		return time.UnixMilli(int64(x)).UTC(), nil
	case json.Number:
		n, err := x.Int64()
		return time.UnixMilli(n).UTC(), err
	case string:
		for _, layout := range []string{time.RFC3339Nano, time.DateTime, time.DateOnly} {
			if t, err := time.Parse(layout, x); err == nil {
				return t, nil
			}
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.UnixMilli(n).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time: %v", v)
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case bool:
		return !x
	}
	return false
}

func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.Format(time.RFC3339)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// stepRefRe finds .steps.N, which Go templates cannot parse (a field name
// cannot be a number); it is rewritten to (index .steps N).
var stepRefRe = regexp.MustCompile(`\.steps\.(\d+)`)

// CompileValue compiles a value read from a recipe: strings containing
// {{ }} become templates; mappings and lists are compiled element-wise.
func CompileValue(name string, v any) (*Value, error) {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return &Value{literal: x}, nil
		}
		val := &Value{}
		src := stepRefRe.ReplaceAllStringFunc(x, func(m string) string {
			n, _ := strconv.Atoi(stepRefRe.FindStringSubmatch(m)[1])
			val.refs = append(val.refs, n)
			return fmt.Sprintf("(index .steps %d)", n)
		})
		t, err := template.New(name).Funcs(TemplateFuncs()).Option("missingkey=zero").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("template: %s", cleanTemplateErr(err))
		}
		val.tmpl = t
		return val, nil
	case map[string]any:
		val := &Value{mapping: map[string]*Value{}}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c, err := CompileValue(name+"."+k, x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			val.mapping[k] = c
			val.refs = append(val.refs, c.refs...)
		}
		return val, nil
	case []any:
		val := &Value{list: make([]*Value, len(x))}
		for i, e := range x {
			c, err := CompileValue(fmt.Sprintf("%s[%d]", name, i), e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			val.list[i] = c
			val.refs = append(val.refs, c.refs...)
		}
		return val, nil
	}
	return &Value{literal: v}, nil
}

// cleanTemplateErr drops text/template's "template: NAME:LINE:" prefix.
func cleanTemplateErr(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.Count(msg[:i], ":") >= 1 {
		msg = msg[i+2:]
	}
	return msg
}

// StepRefs returns the step numbers the value refers to through .steps.N.
func (v *Value) StepRefs() []int { return v.refs }

// IsTemplate reports whether the value contains any template.
func (v *Value) IsTemplate() bool {
	if v.tmpl != nil {
		return true
	}
	for _, c := range v.mapping {
		if c.IsTemplate() {
			return true
		}
	}
	for _, c := range v.list {
		if c.IsTemplate() {
			return true
		}
	}
	return false
}

// Render evaluates the value with data ({trigger, steps, recipe}). Templates
// render to strings; literals, mappings and lists keep their shape.
func (v *Value) Render(data map[string]any) (any, error) {
	switch {
	case v.tmpl != nil:
		var b bytes.Buffer
		if err := v.tmpl.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("render %s: %s", v.tmpl.Name(), cleanTemplateErr(err))
		}
		return strings.ReplaceAll(b.String(), "<no value>", ""), nil
	case v.mapping != nil:
		out := make(map[string]any, len(v.mapping))
		for k, c := range v.mapping {
			r, err := c.Render(data)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case v.list != nil:
		out := make([]any, len(v.list))
		for i, c := range v.list {
			r, err := c.Render(data)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v.literal, nil
}

// Key is a text that two values share when they are written the same
// (the same literals, the same template text, in the same shape), so that
// callers can tell values that render alike for the same data.
func (v *Value) Key() string {
	var b strings.Builder
	v.writeKey(&b)
	return b.String()
}

func (v *Value) writeKey(b *strings.Builder) {
	switch {
	case v.tmpl != nil && v.tmpl.Tree != nil:
		b.WriteString("t")
		b.WriteString(strconv.Quote(v.tmpl.Tree.Root.String()))
	case v.mapping != nil:
		b.WriteString("{")
		for _, k := range sortedKeys(v.mapping) {
			b.WriteString(strconv.Quote(k))
			b.WriteString(":")
			v.mapping[k].writeKey(b)
			b.WriteString(",")
		}
		b.WriteString("}")
	case v.list != nil:
		b.WriteString("[")
		for _, c := range v.list {
			c.writeKey(b)
			b.WriteString(",")
		}
		b.WriteString("]")
	default:
		fmt.Fprintf(b, "%T:%v", v.literal, v.literal)
	}
}

// FieldRefs returns the field chains the value's templates read from their
// data, such as [trigger email] for {{ .trigger.email }} and [steps] for
// .steps.N. Fields inside with and range blocks, where the dot is no longer
// the data, are left out.
func (v *Value) FieldRefs() [][]string {
	var out [][]string
	if v.tmpl != nil && v.tmpl.Tree != nil {
		walkFields(v.tmpl.Tree.Root, &out)
	}
	for _, k := range sortedKeys(v.mapping) {
		out = append(out, v.mapping[k].FieldRefs()...)
	}
	for _, c := range v.list {
		out = append(out, c.FieldRefs()...)
	}
	return out
}

func sortedKeys(m map[string]*Value) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// walkFields collects the field chains of a template parse tree.
func walkFields(n parse.Node, out *[][]string) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			walkFields(c, out)
		}
	case *parse.ActionNode:
		walkFields(x.Pipe, out)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			walkFields(c, out)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			walkFields(a, out)
		}
	case *parse.FieldNode:
		*out = append(*out, x.Ident)
	case *parse.VariableNode:
		if len(x.Ident) > 1 && x.Ident[0] == "$" {
			*out = append(*out, x.Ident[1:])
		}
	case *parse.ChainNode:
		walkFields(x.Node, out)
	case *parse.IfNode:
		walkFields(x.Pipe, out)
		walkFields(x.List, out)
		walkFields(x.ElseList, out)
	case *parse.WithNode:
		walkFields(x.Pipe, out) // the body's dot is the pipe's value
		walkFields(x.ElseList, out)
	case *parse.RangeNode:
		walkFields(x.Pipe, out)
		walkFields(x.ElseList, out)
	}
}
