package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/ghlflow/ghlflow/engine/webhook"
)

// TestInstallLifecycle: an agency installed the app by OAuth; HighLevel's
// INSTALL event for one of its locations brings that location's tenant up
// (its connection exchanged through oauth/locationToken) and it is polled;
// the UNINSTALL event marks the tenant uninstalled, its polls stop and its
// credentials are deleted.
func TestInstallLifecycle(t *testing.T) {
	overlapInShort(t)
	rdb, prefix := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newTenantFixture(t, "A")
	f.srv.AddLocation("loc-X")
	cat := testCatalog(t)
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()
	oauth, err := auth.NewOAuthApp(cat.App("ghl"), f.url, "sim-client", "sim-secret", app.URL+"/oauth/callback")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := auth.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: prefix, Keys: ring, OAuth: map[string]*auth.OAuthApp{"ghl": oauth}})
	if err != nil {
		t.Fatal(err)
	}
	conns := auth.Multi{f.conns, store}
	store.UseExchanger(transport.New(transport.Config{Catalog: cat, Connections: conns}))
	dir := t.TempDir()
	recipe := "name: watch\ntrigger: {op: ghl.contacts.search, connection: ghl, every: 1m, instant: true, params: {sort: [{field: dateAdded, direction: desc}]}}\n" +
		"steps:\n  - op: ghl.contacts.tags.add\n    input: {contactId: \"{{ .trigger.id }}\", tags: [seen]}\n"
	if err := os.WriteFile(filepath.Join(dir, "watch.yaml"), []byte(recipe), 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Catalog: cat, Redis: rdb, Recipes: []string{dir}, Prefix: prefix,
		Caller:      transport.New(transport.Config{Catalog: cat, Connections: conns, BaseURL: f.url}),
		Connections: conns, Every: time.Second, TickEvery: 100 * time.Millisecond, TenantRefresh: 200 * time.Millisecond,
		Locations: engine.ConnectionLocations{Store: store}, Installs: store, Logger: warnLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/oauth/", store.InstallHandler(engine.InstallTenants(eng.Tenants())))
	keys, err := webhook.ParseKeys([]byte(f.srv.WebhookPublicKeyPEM()))
	if err != nil {
		t.Fatal(err)
	}
	h, closeMon := engine.Handler(rdb, asynq.RedisClientOpt{Addr: rdb.Options().Addr}, nil,
		engine.Mount{Pattern: engine.WebhookPath, Handler: &webhook.Handler{Keys: keys, Store: webhook.NewStore(rdb, prefix)}})
	defer closeMon()
	hooks := httptest.NewServer(h)
	defer hooks.Close()
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The agency's OAuth install, with no location chosen yet.
	resp, err := http.Get(app.URL + "/oauth/start?app=ghl&name=agency&agency=1&scopes=oauth.write,contacts.readonly,contacts.write")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	agency, err := store.Get(ctx, "agency")
	if err != nil || agency.CompanyID == "" {
		t.Fatalf("agency connection: %+v %v", agency, err)
	}
	send := func(fields map[string]any) {
		t.Helper()
		fields["appId"], fields["companyId"] = "app1", agency.CompanyID
		fields["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
		if fields["webhookId"] == nil {
			fields["webhookId"] = fields["type"].(string) + "-1"
		}
		body, _ := json.Marshal(fields)
		req, _ := http.NewRequest(http.MethodPost, hooks.URL+engine.WebhookPath, bytes.NewReader(body))
		req.Header.Set(webhook.SignatureHeader, f.srv.SignWebhook(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", fields["type"], resp.StatusCode)
		}
	}
	polls := func() int {
		n := 0
		for _, r := range f.srv.Requests() {
			if r.Op == "ghl.contacts.search" && r.Location == "loc-X" && r.Status == 200 {
				n++
			}
		}
		return n
	}

	send(map[string]any{"type": engine.EventInstall, "locationId": "loc-X", "userId": "u1"})
	until(t, 5*time.Second, "the tenant of loc-X polled", func() bool { return polls() > 0 })
	tn, err := eng.Tenants().Get(ctx, "loc-X")
	if err != nil || tn.Connections["ghl"] != "agency-loc-X" || !tn.Active() || tn.Labels["company"] != agency.CompanyID {
		t.Fatalf("tenant after INSTALL: %+v %v", tn, err)
	}
	if c, err := store.Get(ctx, "agency-loc-X"); err != nil || c.LocationID != "loc-X" || c.Parent != "agency" {
		t.Fatalf("exchanged connection: %+v %v", c, err)
	}

	send(map[string]any{"type": engine.EventUninstall, "locationId": "loc-X"})
	// The event is applied after its 200: the tenant is marked first, then
	// its credentials are deleted.
	until(t, 5*time.Second, "the tenant of loc-X uninstalled and its connection deleted", func() bool {
		tn, err := eng.Tenants().Get(ctx, "loc-X")
		_, connErr := store.Get(ctx, "agency-loc-X")
		return err == nil && tn.Status == tenant.StatusUninstalled && errors.Is(connErr, auth.ErrNotFound)
	})
	if _, err := store.Get(ctx, "agency"); err != nil {
		t.Errorf("a location's uninstall deleted the agency connection: %v", err)
	}
	time.Sleep(time.Second) // the engine applies the change within TenantRefresh
	before := polls()
	time.Sleep(2500 * time.Millisecond)
	if after := polls(); after != before {
		t.Errorf("%d polls of the uninstalled tenant after its uninstall", after-before)
	}
	// Installed again: the tenant comes back.
	send(map[string]any{"type": engine.EventInstall, "locationId": "loc-X", "userId": "u1", "webhookId": "again"})
	until(t, 5*time.Second, "the tenant of loc-X back", func() bool {
		tn, err := eng.Tenants().Get(ctx, "loc-X")
		return err == nil && tn.Active()
	})
}
