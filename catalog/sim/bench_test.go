package sim_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
)

// BenchmarkListContacts measures requests per second of a 20-item page of
// GET /contacts/ over loopback HTTP, with keep-alive clients in parallel.
func BenchmarkListContacts(b *testing.B) {
	e := newEnv(b, sim.Config{Burst: -1, Daily: -1})
	for i := 0; i < 200; i++ {
		e.srv.CreateContact(e.loc, e.fakeFields(i))
	}
	url := e.ts.URL + "/contacts/?limit=20&locationId=" + e.loc
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	auth := e.tok.Authorization()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
		req.Header.Set("Version", "2021-07-28")
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func (e *env) fakeFields(i int) map[string]any {
	return map[string]any{"firstName": "Bench", "lastName": "User", "email": "bench" + string(rune('a'+i%26)) + "@example.com",
		"phone": "+15550001111", "tags": []any{"lead", "bench"}, "city": "Springfield", "source": "bench"}
}
