package engine

import (
	"net/http"

	"github.com/redis/go-redis/v9"
)

// Ready reports whether the engine runs its roles: the recipes are in
// force and, for a worker, the queues are served.
func (e *Engine) Ready() bool { return e.ready.Load() }

// Probes serves what every role answers on its HTTP address: /healthz (the
// process and Redis answer), /readyz (the same, and ready says the process
// does its work) and, when metrics is set, /metrics.
func Probes(rdb redis.UniversalClient, ready func() bool, metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := rdb.Ping(r.Context()).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := rdb.Ping(r.Context()).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if ready != nil && !ready() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	return mux
}
