package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorInfo `json:"error"`
	// Problems are every problem of a recipe refused with 422.
	Problems []Problem `json:"problems,omitempty"`
}

// ErrorInfo says what went wrong: a stable code, a message for people and
// the request field at fault ("" = none).
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Problem is one problem of a recipe, at its line and column.
type Problem struct {
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, ErrorBody{Error: ErrorInfo{Code: code, Message: msg, Field: field}})
}

func notFound(w http.ResponseWriter, what, id string) {
	writeError(w, http.StatusNotFound, "not_found", what+" "+id+" not found", "")
}

// internal answers 500 and logs the cause with the request id.
func (a *API) internal(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("api", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error (request id "+RequestID(r.Context())+")", "")
}

// decode reads a JSON body into v; it answers 400 or 413 itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is over 1 MB", "")
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_json", "the body is not the JSON expected: "+err.Error(), "")
		return false
	}
	return true
}

// enumFilter returns the list filter called name, which must be empty or
// one of allowed; otherwise it answers 422 naming the filter and its
// values, and returns false.
func enumFilter(w http.ResponseWriter, r *http.Request, name string, allowed []string) (string, bool) {
	v := r.URL.Query().Get(name)
	if v == "" || slices.Contains(allowed, v) {
		return v, true
	}
	writeError(w, http.StatusUnprocessableEntity, "invalid_filter",
		fmt.Sprintf("%s %q is not one of %s", name, v, strings.Join(allowed, ", ")), name)
	return "", false
}

// List is the body of every list response.
type List[T any] struct {
	Items []T `json:"items"`
	// NextCursor, when not empty, fetches the next page (?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

// pageParams reads a list request's cursor (an offset) and limit; bad
// names the parameter that is not one this API takes ("" when both are).
func pageParams(r *http.Request) (off, limit int, bad string) {
	limit = 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return 0, 0, "limit"
		}
		limit = n
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return 0, 0, "cursor"
		}
		off = n
	}
	return off, limit, ""
}

// pageEnd is where in a list the page r asks for ends; 0 when r's limit or
// cursor is not one page takes (page then refuses it).
func pageEnd(r *http.Request) int {
	off, limit, bad := pageParams(r)
	if bad != "" {
		return 0
	}
	return off + limit
}

// page cuts items at the request's cursor and limit (default 50, at most
// 500).
func page[T any](w http.ResponseWriter, r *http.Request, items []T) (List[T], bool) {
	off, limit, bad := pageParams(r)
	switch bad {
	case "limit":
		writeError(w, http.StatusBadRequest, "bad_limit", "limit is a number from 1 to 500", "limit")
		return List[T]{}, false
	case "cursor":
		writeError(w, http.StatusBadRequest, "bad_cursor", "the cursor is not one this API gave", "cursor")
		return List[T]{}, false
	}
	out := List[T]{Items: []T{}}
	if off < len(items) {
		end := min(len(items), off+limit)
		out.Items = items[off:end]
		if end < len(items) {
			out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		}
	}
	return out, true
}
