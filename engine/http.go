package engine

import (
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// WebhookPath is where HighLevel's webhooks are received.
const WebhookPath = "/webhooks/ghl"

// Mount is one more handler of the engine's HTTP side.
type Mount struct {
	Pattern string
	Handler http.Handler
}

// Handler serves the engine's HTTP side: the asynq web UI at /monitoring
// (read-only), /healthz (Redis answers), when reg is set /metrics
// (Prometheus), and the mounts (the webhook receiver at WebhookPath). The
// returned close function releases the UI's Redis connections.
func Handler(rdb redis.UniversalClient, redisOpt asynq.RedisConnOpt, reg *prometheus.Registry, mounts ...Mount) (http.Handler, func() error) {
	mux := http.NewServeMux()
	for _, m := range mounts {
		mux.Handle(m.Pattern, m.Handler)
	}
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: redisOpt, ReadOnly: true})
	mux.Handle(mon.RootPath()+"/", mon)
	mux.Handle(mon.RootPath(), http.RedirectHandler(mon.RootPath()+"/", http.StatusFound))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := rdb.Ping(r.Context()).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if reg != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	return mux, mon.Close
}
