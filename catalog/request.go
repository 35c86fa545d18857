package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/sjson"
)

// InputError reports an input a request cannot be built with: a required
// input missing, or a name the operation does not declare.
type InputError struct {
	Op    string
	Input string
	Msg   string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s: input %s: %s", e.Op, e.Input, e.Msg)
}

// NewRequest builds the HTTP request that performs op with the given inputs
// against baseURL (the app's base URL, or a simulator's): path parameters are
// escaped into the path, query inputs go to the query string, body inputs
// into a JSON body (dotted names nest), header inputs into headers, and the
// app's version header carries op.Version. Authentication is the caller's.
func NewRequest(ctx context.Context, app *App, op *Operation, baseURL string, input map[string]any) (*http.Request, error) {
	for _, in := range op.Inputs {
		if v, ok := input[in.Name]; in.Required && (!ok || v == nil) {
			return nil, &InputError{Op: op.ID, Input: in.Name, Msg: "is required"}
		}
	}
	var p requestParts
	if err := p.placeInputs(op, input); err != nil {
		return nil, err
	}
	u := strings.TrimRight(baseURL, "/") + p.path
	if len(p.query) > 0 {
		u += "?" + p.query.Encode()
	}
	var reader *bytes.Reader
	sendBody := p.hasBody || op.Method == http.MethodPost || op.Method == http.MethodPut || op.Method == http.MethodPatch
	if sendBody {
		if op.Body == BodyForm {
			p.body = []byte(p.form.Encode())
		}
		reader = bytes.NewReader(p.body)
	}
	var req *http.Request
	var err error
	if reader != nil {
		req, err = http.NewRequestWithContext(ctx, op.Method, u, reader)
	} else {
		req, err = http.NewRequestWithContext(ctx, op.Method, u, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", op.ID, err)
	}
	for k, vs := range p.header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case sendBody && op.Body == BodyForm:
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case sendBody:
		req.Header.Set("Content-Type", "application/json")
	}
	if app != nil && app.VersionHeader != "" && op.Version != "" {
		req.Header.Set(app.VersionHeader, op.Version)
	}
	return req, nil
}

// requestParts are an operation's inputs placed where they go: the path,
// the query, the headers and the JSON (or form) body.
type requestParts struct {
	path    string
	query   url.Values
	header  http.Header
	body    []byte
	form    url.Values
	hasBody bool
}

// placeInputs places every input of input, in name order, where op says it
// goes.
func (p *requestParts) placeInputs(op *Operation, input map[string]any) error {
	names := make([]string, 0, len(input))
	for name := range input {
		names = append(names, name)
	}
	sort.Strings(names)
	*p = requestParts{path: op.Path, body: []byte("{}")} // query, header and form made when needed
	if op.Body == "array" {
		p.body = []byte("[{}]")
	}
	for _, name := range names {
		in := op.Input(name)
		if in == nil {
			return &InputError{Op: op.ID, Input: name, Msg: "is not an input of this operation"}
		}
		if v := input[name]; v != nil {
			if err := p.place(op, in, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// place puts input in's value v where it goes.
func (p *requestParts) place(op *Operation, in *Input, v any) error {
	name := in.Name
	switch in.In {
	case InPath:
		s := scalarString(v)
		if s == "" {
			return &InputError{Op: op.ID, Input: name, Msg: "is empty"}
		}
		p.path = strings.Replace(p.path, "{"+name+"}", url.PathEscape(s), 1)
	case InQuery:
		if p.query == nil {
			p.query = url.Values{}
		}
		if list, ok := v.([]any); ok {
			for _, e := range list {
				p.query.Add(name, scalarString(e))
			}
		} else if list, ok := v.([]string); ok {
			for _, e := range list {
				p.query.Add(name, e)
			}
		} else {
			p.query.Set(name, scalarString(v))
		}
	case InHeader:
		if p.header == nil {
			p.header = http.Header{}
		}
		p.header.Set(name, scalarString(v))
	case InBody:
		p.hasBody = true
		if op.Body == BodyForm {
			if p.form == nil {
				p.form = url.Values{}
			}
			p.form.Set(name, scalarString(v))
			return nil
		}
		key := name
		if op.Body == "array" {
			key = "0." + name
		}
		var err error
		if p.body, err = sjson.SetBytes(p.body, escapeBodyPath(key), v); err != nil {
			return &InputError{Op: op.ID, Input: name, Msg: err.Error()}
		}
	}
	return nil
}

// BodyForm is the Operation.Body of a request whose body inputs are sent
// form-encoded (OAuth token endpoints) rather than as JSON.
const BodyForm = "form"

// escapeBodyPath keeps sjson's dots (nesting) but escapes the characters
// sjson would read as wildcards or modifiers.
func escapeBodyPath(p string) string {
	if !strings.ContainsAny(p, bodyPathSpecial) {
		return p
	}
	return bodyPathEscaper.Replace(p)
}

// bodyPathSpecial are the characters escapeBodyPath escapes, and
// bodyPathEscaper escapes them (built once: a Replacer is safe for
// concurrent use, and building one per request cost more than the rest of
// the request).
const bodyPathSpecial = "*?|#@"

var bodyPathEscaper = strings.NewReplacer("*", `\*`, "?", `\?`, "|", `\|`, "#", `\#`, "@", `\@`)

// scalarString formats an input value for a path or query string.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
