package sim_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

func TestFaultRates(t *testing.T) {
	const n = 2000
	e := newEnv(t, sim.Config{Burst: -1, Daily: -1, Seed: 42, Faults: sim.Faults{Error5xx: 0.2, Reset: 0.1,
		Timeout: 0.05, TimeoutAfter: time.Millisecond}})
	client := &http.Client{Timeout: 5 * time.Second}
	got5xx, gotErr, ok := 0, 0, 0
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/contacts/?locationId="+e.loc, nil)
		req.Header.Set("Authorization", e.tok.Authorization())
		req.Header.Set("Version", "2021-07-28")
		resp, err := client.Do(req)
		if err != nil {
			gotErr++
			continue
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 500:
			got5xx++
		case resp.StatusCode == 200:
			ok++
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	within := func(name string, got int, want float64) {
		share := float64(got) / n
		if math.Abs(share-want) > 0.035 {
			t.Errorf("%s share %.3f, want %.2f ± 0.035", name, share, want)
		}
	}
	within("5xx", got5xx, 0.2)
	within("dropped connections", gotErr, 0.15)
	within("ok", ok, 0.65)
	c := e.srv.FaultCounts()
	if int(c.Errors5xx) != got5xx || int(c.Resets+c.Timeouts) != gotErr {
		t.Errorf("counters %+v vs observed 5xx=%d dropped=%d", c, got5xx, gotErr)
	}
}

func TestForced429AndAdminFaults(t *testing.T) {
	e := newEnv(t, sim.Config{Burst: -1, Daily: -1})
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/_sim/faults", strings.NewReader(`{"burst429": 3}`))
	if st, b := e.send(req); st != 200 {
		t.Fatalf("set faults: %d %s", st, b)
	}
	statuses := []int{}
	for i := 0; i < 5; i++ {
		statuses = append(statuses, e.getWithHeaders("/contacts/?locationId="+e.loc).StatusCode)
	}
	want := []int{429, 429, 429, 200, 200}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses %v, want %v", statuses, want)
		}
	}
	req, _ = http.NewRequest(http.MethodPost, e.ts.URL+"/_sim/revoke", strings.NewReader(`{"token": "`+e.tok.AccessToken+`"}`))
	if st, _ := e.send(req); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if st := e.getWithHeaders("/contacts/?locationId=" + e.loc).StatusCode; st != 401 {
		t.Fatalf("revoked token: %d", st)
	}
	if _, err := sim.ParseFaults("latency=5ms,jitter=1ms,5xx=2%,reset=0.01,429=4"); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.ParseFaults("5xx=2"); err == nil {
		t.Fatal("share above 1 accepted")
	}
}
