package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// checker validates real responses against the API's OpenAPI document.
type checker struct {
	once   sync.Once
	router routers.Router
	err    error
}

func (f *fixture) openapiRouter() (routers.Router, error) {
	b, err := json.Marshal(f.api.OpenAPI())
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	doc.Servers = openapi3.Servers{{URL: f.srv.URL}}
	return gorillamux.NewRouter(doc)
}

// checkResponse fails the test when a response does not match the
// document's description of its route.
func (f *fixture) checkResponse(req *http.Request, resp *http.Response, body []byte) {
	f.t.Helper()
	f.check.once.Do(func() { f.check.router, f.check.err = f.openapiRouter() })
	if f.check.err != nil {
		f.t.Fatalf("openapi document: %v", f.check.err)
	}
	route, params, err := f.check.router.FindRoute(req)
	if err != nil {
		// Only refusals may come from a path the document does not have.
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusNotFound {
			f.t.Errorf("%s %s: %d, not in the OpenAPI document: %v", req.Method, req.URL.Path, resp.StatusCode, err)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		f.t.Errorf("%s %s: the response does not match the OpenAPI document: %v\n%s", req.Method, req.URL.Path, err, body)
	}
}

// TestOpenAPIMatchesRoutes: the document is valid OpenAPI 3 and describes
// exactly the router's routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := newFixture(t, "testdata/recipes")
	var doc map[string]any
	f.must(f.admin, "GET", "/api/v1/openapi.json", nil, 200, &doc)
	if _, err := f.openapiRouter(); err != nil {
		t.Fatal(err)
	}
	var inDoc, inRouter []string
	for path, ops := range doc["paths"].(map[string]any) {
		for method := range ops.(map[string]any) {
			inDoc = append(inDoc, strings.ToUpper(method)+" "+path)
		}
	}
	for _, rt := range f.api.Routes() {
		inRouter = append(inRouter, rt.Method+" "+rt.Path)
	}
	sort.Strings(inDoc)
	sort.Strings(inRouter)
	if strings.Join(inDoc, "\n") != strings.Join(inRouter, "\n") {
		t.Fatalf("document:\n%s\n\nrouter:\n%s", strings.Join(inDoc, "\n"), strings.Join(inRouter, "\n"))
	}
	if len(inRouter) < 25 {
		t.Fatalf("only %d routes", len(inRouter))
	}
}
