package sim

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/tidwall/sjson"
)

// traceID returns a fresh trace id as GHL puts in its bodies.
func traceID() string { return uuid.NewString() }

// wrapOne returns {"key": <raw>} (or raw itself when key is "").
func wrapOne(key string, raw []byte) []byte {
	if key == "" {
		return raw
	}
	b := make([]byte, 0, len(raw)+len(key)+8)
	b = append(b, '{', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	b = append(b, raw...)
	return append(b, '}')
}

// rawArray joins the raw encodings of objs into a JSON array.
func rawArray(objs []*object) []byte {
	n := 2
	for _, o := range objs {
		n += len(o.raw) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, o := range objs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, o.raw...)
	}
	return append(b, ']')
}

// listBody puts items at the gjson path (a plain key, a dotted path or
// "@this" for a bare array) and merges extra fields at the top level.
func listBody(path string, items []byte, extra map[string]any) []byte {
	if path == "@this" || path == "" {
		return items
	}
	var base []byte
	if len(extra) > 0 {
		var err error
		if base, err = json.Marshal(extra); err != nil {
			base = []byte("{}")
		}
	}
	if !strings.Contains(path, ".") {
		b := make([]byte, 0, len(items)+len(base)+len(path)+8)
		b = append(b, '{', '"')
		b = append(b, path...)
		b = append(b, '"', ':')
		b = append(b, items...)
		if len(base) > 2 {
			b = append(b, ',')
			b = append(b, base[1:]...)
		} else {
			b = append(b, '}')
		}
		return b
	}
	if base == nil {
		base = []byte("{}")
	}
	out, err := sjson.SetRawBytes(base, path, items)
	if err != nil {
		return base
	}
	return out
}

// withField appends "key": value to a raw JSON object.
func withField(raw []byte, key string, value any) []byte {
	v, err := json.Marshal(value)
	if err != nil {
		return raw
	}
	b := make([]byte, 0, len(raw)+len(key)+len(v)+4)
	b = append(b, raw[:len(raw)-1]...)
	if len(raw) > 2 {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	b = append(b, v...)
	return append(b, '}')
}

// intArg parses a paging number sent as a string or a JSON number.
func intArg(v any, def int) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		if x == "" {
			return def
		}
		if n, err := strconv.Atoi(x); err == nil {
			return n
		}
	}
	return def
}
