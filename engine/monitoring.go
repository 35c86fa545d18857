package engine

import (
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// Monitoring returns the asynq web UI rooted at /monitoring, read-only
// unless writable (which lets its users delete, archive and run tasks);
// close releases its Redis connections. Mount it behind an operator key.
func Monitoring(redisOpt asynq.RedisConnOpt, writable bool) (h http.Handler, close func() error) {
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: redisOpt, ReadOnly: !writable})
	return mon, mon.Close
}
