package catalog

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TemplateRoots are the names a recipe template may start a field with:
// .trigger (the polled item), .steps.N (step outputs), .recipe (its name),
// .tenant and .connection (who the recipe runs for and through).
var TemplateRoots = []string{"trigger", "steps", "recipe", "tenant", "connection"}

// checkLiteral reports a literal input value (no template in it) that the
// call would refuse at run time: the wrong type, a value outside the input's
// enum, or a number above its max.
func checkLiteral(d *decoder, n *yaml.Node, op *Operation, in *Input, v any) {
	if s, ok := v.(string); ok && strings.Contains(s, "{{") {
		return // rendered at run time
	}
	if msg, fix := literalTypeProblem(in, v); msg != "" {
		d.errorAt(n, fix, "%s: input %s %s", op.ID, in.Name, msg)
		return
	}
	if len(in.Enum) > 0 {
		if s, ok := scalarText(v); ok && !slices.Contains(in.Enum, s) {
			fix := didYouMean(s, in.Enum)
			if !strings.HasPrefix(fix, "one of") {
				fix += " It takes " + strings.Join(in.Enum, ", ")
			}
			d.errorAt(n, fix, "%s: input %s: %q is not one of its values", op.ID, in.Name, s)
			return
		}
	}
	if m := maxOf(op, in); m > 0 {
		if f, ok := literalNumber(v); ok && f > float64(m) {
			d.errorAt(n, fmt.Sprintf("write at most %d", m), "%s: input %s: %s is above its maximum %d", op.ID, in.Name, formatNumber(f), m)
		}
	}
}

// maxOf returns the largest value in accepts: its declared max, or the
// page size limit of the trigger's paging when in is the page size; 0 = none.
func maxOf(op *Operation, in *Input) int {
	m := in.Max
	if p := op.Paging; p != nil && in.Name == p.Limit && p.MaxLimit > 0 && (m == 0 || p.MaxLimit < m) {
		m = p.MaxLimit
	}
	return m
}

// literalTypeProblem says what is wrong with v as a value of in's type (and
// how to fix it), or "" when v fits. It accepts what actions.Coerce turns
// into the type at run time (text holding a number, true/false, JSON).
func literalTypeProblem(in *Input, v any) (msg, fix string) {
	if v == nil {
		return "", ""
	}
	switch in.Type {
	case "string", "datetime", "date":
		if _, ok := scalarText(v); !ok {
			return fmt.Sprintf("is text, not %s", describe(v)), "write one value; quote it if it holds [ ] or { }"
		}
	case "number", "integer":
		f, ok := literalNumber(v)
		if !ok {
			return fmt.Sprintf("is a number, not %s", describe(v)), "write a number such as 10"
		}
		if in.Type == "integer" && f != math.Trunc(f) {
			return fmt.Sprintf("is a whole number, not %s", formatNumber(f)), "write a whole number such as 10"
		}
	case "boolean":
		switch x := v.(type) {
		case bool:
		case string:
			if _, err := strconv.ParseBool(strings.TrimSpace(x)); err != nil {
				return fmt.Sprintf("is true or false, not %s", describe(v)), "write true or false, without quotes"
			}
		default:
			return fmt.Sprintf("is true or false, not %s", describe(v)), "write true or false, without quotes"
		}
	case "array":
		switch x := v.(type) {
		case []any:
		case string:
			var out []any
			if json.Unmarshal([]byte(x), &out) != nil {
				return fmt.Sprintf("is a list, not %s", describe(v)), fmt.Sprintf("write a list: [%s]", x)
			}
		default:
			return fmt.Sprintf("is a list, not %s", describe(v)), fmt.Sprintf("write a list: [%v]", v)
		}
	case "object":
		switch x := v.(type) {
		case map[string]any:
		case string:
			var out map[string]any
			if json.Unmarshal([]byte(x), &out) != nil {
				return fmt.Sprintf("is a mapping, not %s", describe(v)), "write a mapping of fields, e.g. {key: value}"
			}
		default:
			return fmt.Sprintf("is a mapping, not %s", describe(v)), "write a mapping of fields, e.g. {key: value}"
		}
	}
	return "", ""
}

// scalarText returns a scalar literal as the text a request would carry.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return formatNumber(x), true
	}
	return "", false
}

// literalNumber reads a number literal, or text holding one.
func literalNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// describe names a literal for a message: the text "lots", a list, ...
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case bool:
		return strconv.FormatBool(x)
	}
	if s, ok := scalarText(v); ok {
		return s
	}
	return fmt.Sprintf("%T", v)
}

// checkRefs reports template fields whose root is not one of TemplateRoots
// (an error: they render empty) and, when the trigger's item fields are
// known, .trigger fields the item does not have (a warning: the API may add
// fields the catalog does not list).
func checkRefs(d *decoder, n *yaml.Node, where string, v *Value, trigger *Operation) {
	for _, ref := range v.FieldRefs() {
		root := ref[0]
		if !slices.Contains(TemplateRoots, root) {
			fix := didYouMean(root, TemplateRoots)
			if strings.HasPrefix(fix, "one of") {
				fix = "templates start with ." + strings.Join(TemplateRoots, ", .")
			}
			d.errorAt(n, fix, "%s: unknown template root .%s", where, strings.Join(ref, "."))
			continue
		}
		if root != "trigger" || len(ref) < 2 || trigger == nil || len(trigger.ItemFields) == 0 {
			continue
		}
		if !slices.Contains(trigger.ItemFields, ref[1]) {
			fix := didYouMean(ref[1], trigger.ItemFields)
			if fix == "" {
				fix = "'ghlflow catalog show " + trigger.ID + "' lists them"
			}
			d.warnAt(n, fix, "%s: %s items have no field %q", where, trigger.ID, ref[1])
		}
	}
}
