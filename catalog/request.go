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
	names := make([]string, 0, len(input))
	for name := range input {
		names = append(names, name)
	}
	sort.Strings(names)

	path := op.Path
	query := url.Values{}
	header := http.Header{}
	var body []byte
	if op.Body == "array" {
		body = []byte("[{}]")
	} else {
		body = []byte("{}")
	}
	hasBody := false
	form := url.Values{}
	for _, name := range names {
		v := input[name]
		in := op.Input(name)
		if in == nil {
			return nil, &InputError{Op: op.ID, Input: name, Msg: "is not an input of this operation"}
		}
		if v == nil {
			continue
		}
		switch in.In {
		case InPath:
			s := scalarString(v)
			if s == "" {
				return nil, &InputError{Op: op.ID, Input: name, Msg: "is empty"}
			}
			path = strings.Replace(path, "{"+name+"}", url.PathEscape(s), 1)
		case InQuery:
			if list, ok := v.([]any); ok {
				for _, e := range list {
					query.Add(name, scalarString(e))
				}
			} else if list, ok := v.([]string); ok {
				for _, e := range list {
					query.Add(name, e)
				}
			} else {
				query.Set(name, scalarString(v))
			}
		case InHeader:
			header.Set(name, scalarString(v))
		case InBody:
			if op.Body == BodyForm {
				form.Set(name, scalarString(v))
				hasBody = true
				continue
			}
			key := name
			if op.Body == "array" {
				key = "0." + name
			}
			var err error
			if body, err = sjson.SetBytes(body, escapeBodyPath(key), v); err != nil {
				return nil, &InputError{Op: op.ID, Input: name, Msg: err.Error()}
			}
			hasBody = true
		}
	}
	u := strings.TrimRight(baseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var reader *bytes.Reader
	sendBody := hasBody || op.Method == http.MethodPost || op.Method == http.MethodPut || op.Method == http.MethodPatch
	if sendBody {
		if op.Body == BodyForm {
			body = []byte(form.Encode())
		}
		reader = bytes.NewReader(body)
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
	for k, vs := range header {
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
