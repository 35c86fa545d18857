package sim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
)

// env is one simulator under httptest with a location token.
type env struct {
	t   testing.TB
	cat *catalog.Catalog
	srv *sim.Server
	ts  *httptest.Server
	loc string
	tok sim.Token
}

func newEnv(t testing.TB, cfg sim.Config) *env {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.New(cat, cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	loc := "locAAAAAAAAAAAAAAAAA"
	srv.AddLocation(loc)
	return &env{t: t, cat: cat, srv: srv, ts: ts, loc: loc, tok: srv.IssueToken(sim.TokenSpec{LocationID: loc})}
}

// do performs op with input using token tok and returns status and body.
func (e *env) do(tok sim.Token, opID string, input map[string]any) (int, []byte) {
	e.t.Helper()
	op := e.cat.MustOp(opID)
	req, err := catalog.NewRequest(context.Background(), e.cat.App(op.App), op, e.ts.URL, input)
	if err != nil {
		e.t.Fatalf("%s: %v", opID, err)
	}
	req.Header.Set("Authorization", tok.Authorization())
	return e.send(req)
}

func (e *env) send(req *http.Request) (int, []byte) {
	e.t.Helper()
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// call is do with the env's location token, failing unless the status is
// 2xx.
func (e *env) call(opID string, input map[string]any) map[string]any {
	e.t.Helper()
	st, b := e.do(e.tok, opID, input)
	if st/100 != 2 {
		e.t.Fatalf("%s: status %d: %s", opID, st, b)
	}
	var m map[string]any
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m); err != nil {
			e.t.Fatalf("%s: %v: %s", opID, err, b)
		}
	}
	return m
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
