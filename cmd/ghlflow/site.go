package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/api"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/web"
)

// EnvAdminToken is an operator key taken from the environment, never
// stored: the first key of a new deployment.
const EnvAdminToken = "GHLFLOW_ADMIN_TOKEN"

// siteConfig is what the HTTP side of `run` serves from.
type siteConfig struct {
	rdb        redis.UniversalClient
	prefix     string
	cat        *catalog.Catalog
	eng        *engine.Engine
	store      *auth.Store
	static     []auth.Connection // the static file's, metadata only
	recipes    []string
	oauth      bool
	engineHTTP http.Handler // /healthz, /metrics
	monitoring http.Handler // the asynq web UI at /monitoring
}

// siteHandler serves the API at /api/v1, the pages at /, /monitoring
// behind an operator key and, when an OAuth app is configured, the
// install at /oauth/.
func siteHandler(ctx context.Context, log *slog.Logger, c siteConfig) http.Handler {
	keys := apikey.New(c.rdb, c.prefix, os.Getenv(EnvAdminToken))
	if ks, err := keys.List(ctx, ""); err == nil && len(ks) == 0 && os.Getenv(EnvAdminToken) == "" {
		log.Warn("no API key yet: make one with 'ghlflow apikey create' or set " + EnvAdminToken)
	}
	a := api.New(api.Config{Redis: c.rdb, Prefix: c.prefix, Catalog: c.cat, Keys: keys, Subscriptions: c.eng.Registry(),
		Connections: c.store, StaticConnections: c.static, Poller: c.eng.Poller, RecipeFiles: c.recipes, Logger: log})
	cfg := web.Config{API: a, Monitoring: c.monitoring, Fallback: c.engineHTTP, Logger: log}
	if c.oauth {
		cfg.OAuth = c.store.InstallHandler(engine.InstallTenants(c.eng.Tenants()))
	}
	return web.New(cfg)
}
