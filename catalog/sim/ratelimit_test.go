package sim_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

func (e *env) getWithHeaders(path string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	req.Header.Set("Authorization", e.tok.Authorization())
	req.Header.Set("Version", "2021-07-28")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestBurstLimitAndHeaders(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, sim.Config{Now: clk.now, Burst: 5, Interval: 10 * time.Second, Daily: 1000})
	path := "/contacts/?locationId=" + e.loc
	for i := 1; i <= 5; i++ {
		resp := e.getWithHeaders(path)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		h := resp.Header
		want := map[string]string{"X-RateLimit-Max": "5", "X-RateLimit-Interval-Milliseconds": "10000",
			"X-RateLimit-Remaining": strconv.Itoa(5 - i), "X-RateLimit-Limit-Daily": "1000",
			"X-RateLimit-Daily-Remaining": strconv.Itoa(1000 - i)}
		for k, v := range want {
			if h.Get(k) != v {
				t.Fatalf("request %d: %s = %q, want %q", i, k, h.Get(k), v)
			}
		}
	}
	resp := e.getWithHeaders(path)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("past the burst: %d remaining %q", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
	}
	// Another location has its own budget.
	other := "locCCCCCCCCCCCCCCCCC"
	e.srv.AddLocation(other)
	e2 := *e
	e2.tok = e.srv.IssueToken(sim.TokenSpec{LocationID: other})
	if r := e2.getWithHeaders("/contacts/?locationId=" + other); r.StatusCode != 200 {
		t.Fatalf("other location limited: %d", r.StatusCode)
	}
	clk.add(10 * time.Second)
	if r := e.getWithHeaders(path); r.StatusCode != 200 {
		t.Fatalf("after the interval: %d", r.StatusCode)
	}
	if e.srv.TooManyRequests() != 1 {
		t.Fatalf("429 count %d", e.srv.TooManyRequests())
	}
}

func TestDailyLimit(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, sim.Config{Now: clk.now, Burst: 100, Daily: 3})
	e.tok = e.srv.IssueToken(sim.TokenSpec{LocationID: e.loc, Private: true})
	path := "/contacts/?locationId=" + e.loc
	for i := 0; i < 3; i++ {
		if r := e.getWithHeaders(path); r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, r.StatusCode)
		}
	}
	r := e.getWithHeaders(path)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("X-RateLimit-Daily-Remaining") != "0" ||
		r.Header.Get("X-RateLimit-Remaining") == "0" {
		t.Fatalf("daily 429: %d %v", r.StatusCode, r.Header)
	}
	clk.add(24 * time.Hour)
	if r := e.getWithHeaders(path); r.StatusCode != 200 {
		t.Fatalf("next day: %d", r.StatusCode)
	}
}
