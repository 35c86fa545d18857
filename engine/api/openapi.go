package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// schemas are the Go types behind the OpenAPI document's schema names;
// the document's schemas are derived from them, so they cannot drift.
var schemas = map[string]any{
	"Error":              ErrorBody{},
	"Tenant":             TenantView{},
	"TenantList":         List[TenantView]{},
	"TenantCreate":       TenantCreate{},
	"TenantPatch":        TenantPatch{},
	"TenantRemoved":      TenantRemoved{},
	"Connection":         ConnectionView{},
	"ConnectionList":     List[ConnectionView]{},
	"ConnectionCreate":   ConnectionCreate{},
	"InstallCreate":      InstallCreate{},
	"InstallLink":        InstallLink{},
	"KeyList":            List[KeyView]{},
	"KeyCreate":          KeyCreate{},
	"NewKey":             NewKey{},
	"Recipe":             RecipeView{},
	"RecipeList":         List[RecipeView]{},
	"Lint":               Lint{},
	"Subscription":       SubscriptionView{},
	"SubscriptionList":   List[SubscriptionView]{},
	"SubscriptionDetail": SubscriptionDetail{},
	"Sample":             Sample{},
	"ReplayRequest":      ReplayRequest{},
	"Replay":             Replay{},
	"Run":                RunView{},
	"RunList":            List[RunView]{},
}

// listFilter is a query parameter of a list; Enum, when set, holds the
// only values it takes (others answer 422).
type listFilter struct {
	Name string
	Enum []string
}

// listFilters are the query parameters of each list beside cursor and
// limit, with the values the handlers accept.
var listFilters = map[string][]listFilter{
	Base + "/tenants":       {{"status", tenant.Statuses()}, {"label", nil}},
	Base + "/subscriptions": {{"tenant", nil}, {"recipe", nil}, {"status", subStatuses()}},
	Base + "/runs":          {{"subscription", nil}, {"tenant", nil}, {"status", engine.RecordedChainStatuses()}},
}

var pathParamRe = regexp.MustCompile(`\{([a-z]+)\}`)

// OpenAPI returns the OpenAPI 3 document of the API.
func (a *API) OpenAPI() map[string]any {
	comps := map[string]any{}
	for name, v := range schemas {
		comps[name] = schemaOf(reflect.TypeOf(v))
	}
	paths := map[string]map[string]any{}
	for _, rt := range a.routes {
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = operation(rt)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "ghlflow API", "version": "1",
			"description": "Tenants, connections, keys, recipes, subscriptions and chain runs of a ghlflow backend."},
		"paths": paths,
		"components": map[string]any{"schemas": comps,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func jsonContent(name string) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": ref(name)}}
}

func operation(rt Route) map[string]any {
	id := strings.ToLower(rt.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", ":", "_").Replace(strings.TrimPrefix(rt.Path, Base))
	op := map[string]any{"operationId": id, "summary": rt.Summary}
	var params []any
	for _, m := range pathParamRe.FindAllStringSubmatch(rt.Path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	if rt.Method == "GET" && strings.HasSuffix(rt.Response, "List") {
		for _, q := range append([]listFilter{{Name: "cursor"}, {Name: "limit"}}, listFilters[rt.Path]...) {
			s := map[string]any{"type": "string"}
			switch {
			case q.Name == "limit":
				s = map[string]any{"type": "integer", "minimum": 1, "maximum": 500}
			case q.Enum != nil:
				s["enum"] = q.Enum
			}
			params = append(params, map[string]any{"name": q.Name, "in": "query", "schema": s})
		}
	}
	if params != nil {
		op["parameters"] = params
	}
	switch {
	case rt.Request != "":
		op["requestBody"] = map[string]any{"required": rt.Method != "POST" || rt.Request != "PauseRequest", "content": jsonContent(rt.Request)}
	case strings.Contains(rt.Path, "recipes"):
		if rt.Method == "PUT" || rt.Method == "POST" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/yaml": map[string]any{"schema": map[string]any{"type": "string"}}}}
		}
	}
	resp := map[string]any{}
	ok := map[string]any{"description": http.StatusText(rt.Status)}
	if rt.Response != "" {
		ok["content"] = jsonContent(rt.Response)
	}
	resp[itoa(rt.Status)] = ok
	for _, code := range []int{400, 401, 403, 404, 409, 413, 422, 500, 501, 502} {
		resp[itoa(code)] = map[string]any{"description": http.StatusText(code), "content": jsonContent("Error")}
	}
	op["responses"] = resp
	return op
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
	durType  = reflect.TypeOf(time.Duration(0))
)

// schemaOf derives a JSON schema from a Go type as encoding/json writes it.
func schemaOf(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{}
	case t == durType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		s["nullable"] = true
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props, req := map[string]any{}, []string{}
		structFields(t, props, &req)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			s["required"] = req
		}
		return s
	}
	return map[string]any{}
}

func structFields(t reflect.Type, props map[string]any, req *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			structFields(f.Type, props, req)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		if !strings.Contains(opts, "omit") && f.Type.Kind() != reflect.Pointer {
			*req = append(*req, name)
		}
	}
}

// openapi serves the document.
func (a *API) openapi(w http.ResponseWriter, _ *http.Request, _ apikey.Key) {
	writeJSON(w, http.StatusOK, a.OpenAPI())
}
