package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiError is a failure a handler returns; status and message end up in the
// app's error body.
type apiError struct {
	status int
	msg    any // string, or []string for GHL's 422 bodies
	extra  map[string]any
}

func errf(status int, msg string) *apiError { return &apiError{status: status, msg: msg} }

// unprocessable is GHL's 422 with message as an array.
func unprocessable(msgs ...string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, msg: msgs}
}

// ghlErrorBody is the NestJS-style body GHL answers errors with.
func ghlErrorBody(status int, msg any, extra map[string]any) map[string]any {
	b := map[string]any{"statusCode": status, "message": msg}
	if t := http.StatusText(status); t != "" && status != http.StatusTooManyRequests {
		b["error"] = t
	} else if status == http.StatusTooManyRequests {
		b["error"] = "Too Many Requests"
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// errorBody shapes an error in the style of app.
func errorBody(app string, e *apiError) map[string]any {
	switch app {
	case "referralrock":
		return map[string]any{"message": msgString(e.msg)}
	case "referrizer":
		code := map[int]string{400: "BAD_REQUEST", 401: "INVALID_TOKEN", 403: "FORBIDDEN", 404: "RESOURCE_NOT_FOUND",
			422: "VALIDATION_ERROR", 429: "TOO_MANY_REQUESTS", 500: "INTERNAL_ERROR"}[e.status]
		if code == "" {
			code = "ERROR"
		}
		return map[string]any{"errorCode": code, "message": msgString(e.msg)}
	}
	return ghlErrorBody(e.status, e.msg, e.extra)
}

func msgString(m any) string {
	switch x := m.(type) {
	case string:
		return x
	case []string:
		if len(x) > 0 {
			return x[0]
		}
	}
	return ""
}

// writeError sends a GHL error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ghlErrorBody(status, msg, nil))
}

// writeJSON sends body ([]byte as is, anything else encoded) with status.
func writeJSON(w http.ResponseWriter, status int, body any) {
	var b []byte
	switch x := body.(type) {
	case []byte:
		b = x
	case rawBody:
		w.Header()["Content-Type"] = []string{x.contentType}
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(x.b))}
		w.WriteHeader(status)
		_, _ = w.Write(x.b)
		return
	case nil:
		b = []byte("{}")
	default:
		var err error
		if b, err = json.Marshal(x); err != nil {
			b = []byte(`{"statusCode":500,"message":"encode response"}`)
			status = http.StatusInternalServerError
		}
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var jsonContentType = []string{"application/json; charset=utf-8"}
