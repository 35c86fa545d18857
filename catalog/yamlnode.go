package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder turns YAML nodes into Go values and collects every problem it
// meets, each with the file, line and column of the node at fault.
type decoder struct {
	file  string
	errs  Errors
	warns Errors
}

// warnAt records a warning: a likely mistake that does not stop the load.
func (d *decoder) warnAt(n *yaml.Node, fix, format string, args ...any) {
	e := &Error{File: d.file, Msg: fmt.Sprintf(format, args...), Fix: fix, Warning: true}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.warns = append(d.warns, e)
}

func (d *decoder) errorAt(n *yaml.Node, fix, format string, args ...any) {
	e := &Error{File: d.file, Msg: fmt.Sprintf(format, args...), Fix: fix}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// DecodeYAML decodes data, the content of file, into v the way recipes are
// read: syntax errors, unknown and repeated fields and values of the wrong
// type are all reported at once, each with its file:line:col, as Errors. An
// empty document leaves v as it is.
func DecodeYAML(file string, data []byte, v any) error {
	d := &decoder{file: file}
	var doc yaml.Node
	if !d.unmarshal(data, &doc) || len(doc.Content) == 0 {
		return d.errs.Err()
	}
	d.decode(doc.Content[0], v)
	return d.errs.Err()
}

// unmarshal reads data into doc, reporting a syntax error at its place.
func (d *decoder) unmarshal(data []byte, doc *yaml.Node) bool {
	if err := yaml.Unmarshal(data, doc); err != nil {
		line, col, msg := syntaxErrorAt(data, err.Error())
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Col: col, Msg: "invalid YAML: " + msg,
			Fix: "check indentation and quoting around this line"})
		return false
	}
	return true
}

// parse reads a YAML document into its root mapping node.
func (d *decoder) parse(data []byte) *yaml.Node {
	var doc yaml.Node
	if !d.unmarshal(data, &doc) {
		return nil
	}
	if len(doc.Content) == 0 {
		d.errorAt(nil, "the file must hold a YAML mapping", "file is empty")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		d.errorAt(root, "the file must hold a YAML mapping of fields", "expected a mapping, found %s", kindName(root))
		return nil
	}
	return root
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

// parserProblems are the yaml.v3 syntax errors raised by its parser, which
// reports the line of the collection being parsed counted from 0 (its
// scanner's errors count from 1). The value is the character that opens
// that collection, "" for a block one.
var parserProblems = map[string]string{
	"did not find expected ',' or ']'":    "[",
	"did not find expected ',' or '}'":    "{",
	"did not find expected '-' indicator": "",
	"did not find expected key":           "",
	"did not find expected node content":  "",
}

// syntaxErrorAt turns a yaml.v3 syntax error into the line and column it is
// about and the message without its "yaml: line N:" prefix. yaml.v3 gives
// no column: it is the collection's opening bracket on that line, or the
// line's first character.
func syntaxErrorAt(data []byte, errMsg string) (line, col int, msg string) {
	msg = strings.TrimPrefix(errMsg, "yaml: ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(m[2])
	}
	open, fromParser := parserProblems[msg]
	if fromParser {
		line++
	}
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return max(line, 1), 1, msg
	}
	text := lines[line-1]
	if open != "" {
		if i := strings.Index(text, open); i >= 0 {
			return line, i + 1, msg
		}
	}
	return line, len(text) - len(strings.TrimLeft(text, " \t")) + 1, msg
}

// decode checks n's keys against v's yaml fields, recursively, reporting
// unknown and duplicate keys, then decodes n into v, reporting type errors.
// It returns false when anything was wrong.
func (d *decoder) decode(n *yaml.Node, v any) bool {
	before := len(d.errs)
	d.checkKeys(n, reflect.TypeOf(v))
	if err := n.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				d.typeError(n, msg)
			}
		} else {
			d.typeError(n, strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	return len(d.errs) == before
}

// typeError turns a yaml.v3 type error ("line 7: cannot unmarshal !!str `x`
// into int") into an Error at that line.
func (d *decoder) typeError(n *yaml.Node, msg string) {
	line := n.Line
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	col := columnOfLine(n, line)
	msg = strings.Replace(msg, "cannot unmarshal", "wrong type:", 1)
	msg = typeIntoRe.ReplaceAllStringFunc(msg, func(s string) string {
		s = strings.TrimPrefix(s, "into ")
		switch {
		case strings.Contains(s, "int"):
			return "where a whole number is expected"
		case strings.Contains(s, "bool"):
			return "where true or false is expected"
		case strings.Contains(s, "string"):
			return "where text is expected"
		case strings.Contains(s, "float"):
			return "where a number is expected"
		}
		return s
	})
	msg = typeNameRe.ReplaceAllStringFunc(msg, func(s string) string {
		switch s {
		case "!!str":
			return "text"
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		case "!!seq":
			return "list"
		case "!!map":
			return "mapping"
		}
		return s
	})
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Col: col, Msg: msg,
		Fix: "write a value of the expected type"})
}

var (
	typeNameRe = regexp.MustCompile(`!!\w+`)
	typeIntoRe = regexp.MustCompile(`into (u?int\d*|bool|string|float\d*)$`)
)

// columnOfLine finds the column of the first value node on line within n.
func columnOfLine(n *yaml.Node, line int) int {
	if n.Line == line && n.Kind == yaml.ScalarNode {
		return n.Column
	}
	best := 0
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // a key; look at its value
		}
		col := columnOfLine(c, line)
		if c.Line == line && (col == 0 || c.Column < col) {
			col = c.Column // the value itself, before what it holds
		}
		if col > 0 && (best == 0 || col < best) {
			best = col
		}
	}
	return best
}

// checkKeys walks n alongside type t and reports mapping keys that name no
// field, and keys given twice.
func (d *decoder) checkKeys(n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // Decode reports the type error
		}
		fields := yamlFields(t)
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		sortStrings(names)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.errorAt(k, "remove one of them", "field %q is given twice", k.Value)
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				d.errorAt(k, didYouMean(k.Value, names), "unknown field %q", k.Value)
				continue
			}
			d.checkKeys(v, ft)
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				d.checkKeys(c, t.Elem())
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			seen := map[string]bool{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if seen[k.Value] {
					d.errorAt(k, "remove one of them", "key %q is given twice", k.Value)
				}
				seen[k.Value] = true
				d.checkKeys(n.Content[i+1], t.Elem())
			}
		}
	}
}

// yamlFields maps the yaml names of t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// field returns the value node of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// at returns the value node of key in n, or n itself when key is absent, so
// an error about a missing or wrong field still points near it.
func at(n *yaml.Node, key string) *yaml.Node {
	if f := field(n, key); f != nil {
		return f
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// UnmarshalYAML reads a duration such as "10s" or "5m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		// A TypeError lets the decoder go on and report the other fields too.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q, write it like 10s or 5m", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a duration as "10s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes a duration as "10s" (for JSON).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
