package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/ratelimit"
	"github.com/ghlflow/ghlflow/engine/transport"
	"github.com/redis/go-redis/v9"
)

// connectCommand is `ghlflow connect`: adds and manages the connections of
// the sealed store in Redis.
func connectCommand() *command {
	return &command{name: "connect", summary: "add and manage connections (OAuth installs, tokens, keys) in the sealed store",
		dflt: "install",
		details: "Environment: REDIS_URL (or REDIS_ADDR), GHLFLOW_SECRET_KEY or GHLFLOW_SECRET_KEY_FILE,\n" +
			"GHLFLOW_GHL_CLIENT_ID, GHLFLOW_GHL_CLIENT_SECRET, GHLFLOW_GHL_BASE_URL.",
		subs: []*command{
			{name: "install", summary: "OAuth install from a terminal: print the authorize URL, receive the callback, store the connection", setup: setupConnectInstall},
			{name: "token", summary: "store a Private Integration token or API token (from --token-env or standard input, never a flag)", setup: setupConnectToken},
			{name: "basic", summary: "store HTTP Basic keys (Referral Rock: public key as --username, private key from --password-env or standard input)", setup: setupConnectBasic},
			{name: "exchange", summary: "make a location connection from an agency connection", setup: setupConnectExchange},
			{name: "list", summary: "list connections, their status and the engine's pauses", setup: setupConnectList},
			{name: "refresh", summary: "refresh a connection's OAuth token now", args: "NAME", setup: setupConnectRefresh},
			{name: "pause", summary: "pause a connection: the engine leaves it alone until it is resumed", args: "NAME", setup: setupConnectPause},
			{name: "resume", summary: "resume a paused connection, also lifting the engine's pause of it (static connections too)", args: "NAME", setup: setupConnectResume},
			{name: "remove", summary: "delete a connection and its credential", args: "NAME", setup: setupConnectRemove},
			{name: "reseal", summary: "re-seal every credential with the newest key (after a key rotation)", setup: setupConnectReseal},
			{name: "keygen", summary: "print a new random key for " + auth.EnvSecretKey, setup: func(*flag.FlagSet) runFunc {
				return func(ctx context.Context, args []string) int {
					if len(args) > 0 {
						return connectUsageError("keygen", "takes no arguments")
					}
					fmt.Println(auth.GenerateKey())
					return 0
				}
			}},
		}}
}

// storeFlags are the flags of every subcommand that opens the store.
type storeFlags struct {
	redisURL, prefix, devKeyFile string
	dev                          bool
}

func (c *storeFlags) register(fs *flag.FlagSet) {
	redisFlag(fs, &c.redisURL)
	fs.StringVar(&c.prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	fs.BoolVar(&c.dev, "dev", false, "dev mode: without "+auth.EnvSecretKey+", use a generated development key (loudly)")
	fs.StringVar(&c.devKeyFile, "dev-key-file", "", "where dev mode keeps its key")
}

// oauthFlags are the flags of the subcommands that talk to GHL's OAuth
// endpoints.
type oauthFlags struct {
	baseURL, clientID, clientSecret string
}

func (c *oauthFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.baseURL, "base-url", os.Getenv("GHLFLOW_GHL_BASE_URL"), "GHL base URL override (a simulator); also used for the OAuth pages")
	fs.StringVar(&c.clientID, "client-id", os.Getenv("GHLFLOW_GHL_CLIENT_ID"), "OAuth client id of the marketplace app")
	fs.StringVar(&c.clientSecret, "client-secret", os.Getenv("GHLFLOW_GHL_CLIENT_SECRET"), "OAuth client secret (prefer the environment)")
}

// connectRedis connects to the Redis of the store.
func (c *storeFlags) connectRedis(ctx context.Context) (redis.UniversalClient, error) {
	o, err := parseRedis(c.redisURL)
	if err != nil {
		return nil, err
	}
	rdb := o.Client()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", strings.Join(o.Addrs(), ","), err)
	}
	// Connections stored by earlier versions move to their current keys.
	if _, err := auth.MoveLegacyKeys(ctx, rdb, c.prefix); err != nil {
		rdb.Close()
		return nil, err
	}
	return rdb, nil
}

// open connects to Redis and builds the connection store; oauth may be nil
// when the subcommand makes no OAuth call.
func (c *storeFlags) open(ctx context.Context, oauth *oauthFlags, redirect string) (*auth.Store, redis.UniversalClient, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	keys, err := auth.LoadKeyring(auth.KeyConfig{Dev: c.dev, DevFile: c.devKeyFile, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	cat, err := catalog.Default()
	if err != nil {
		return nil, nil, err
	}
	apps := map[string]*auth.OAuthApp{}
	if oauth != nil && oauth.clientID != "" && oauth.clientSecret != "" {
		app, err := auth.NewOAuthApp(cat.App("ghl"), oauth.baseURL, oauth.clientID, oauth.clientSecret, redirect)
		if err != nil {
			return nil, nil, err
		}
		apps["ghl"] = app
	}
	rdb, err := c.connectRedis(ctx)
	if err != nil {
		return nil, nil, err
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: c.prefix, Keys: keys, OAuth: apps, Logger: log})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	// Location token exchanges (agency installs, `connect exchange`) go
	// through the transport like any other call.
	store.UseExchanger(transport.New(transport.Config{Catalog: cat, Connections: store, Logger: log}))
	return store, rdb, nil
}

func connectFail(sub string, err error) int {
	fmt.Fprintf(os.Stderr, "ghlflow connect %s: %s\n", sub, auth.Redact(err.Error()))
	return 1
}

func connectUsageError(sub, msg string) int {
	fmt.Fprintf(os.Stderr, "ghlflow connect %s: %s\nRun 'ghlflow connect %s --help' for its usage.\n", sub, msg, sub)
	return 2
}

// oneName returns the NAME argument of a subcommand, or "" after printing
// a usage error.
func oneName(sub string, args []string) string {
	if len(args) != 1 {
		connectUsageError(sub, "name one connection")
		return ""
	}
	return args[0]
}

// checkApp reports an app id the catalog does not know.
func checkApp(id string) error {
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	if cat.App(id) == nil {
		return fmt.Errorf("unknown app %q%s", id, suggest(id, appIDs(cat)))
	}
	return nil
}

func setupConnectInstall(fs *flag.FlagSet) runFunc {
	var sf storeFlags
	var of oauthFlags
	sf.register(fs)
	of.register(fs)
	app := fs.String("app", "ghl", "app id (OAuth: ghl)")
	name := fs.String("name", "", "connection id (recipes name it)")
	scopes := fs.String("scopes", "", "OAuth scopes to ask for, comma-separated")
	recipes := fs.String("recipes", "", "recipe files or folders, comma-separated: ask for the scopes their steps need through --name")
	agency := fs.Bool("agency", false, "agency (Company) install")
	locations := fs.String("locations", "", "agency install: locations to make connections for, comma-separated, or *")
	listen := fs.String("listen", "127.0.0.1:8789", "address the OAuth callback is received on")
	redirect := fs.String("redirect-url", "", "redirect URL registered with the marketplace app (default http://LISTEN/oauth/callback)")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the install to be approved")
	return func(ctx context.Context, args []string) int {
		const sub = "install"
		if len(args) > 0 {
			return connectUsageError(sub, fmt.Sprintf("unexpected argument %q (the connection is --name)", args[0]))
		}
		if err := checkApp(*app); err != nil {
			return connectFail(sub, err)
		}
		req := auth.InstallRequest{App: *app, Name: *name, Agency: *agency, Scopes: connectSplit(*scopes),
			Locations: connectSplit(*locations)}
		if *recipes != "" {
			if *name == "" {
				return connectFail(sub, errors.New("--recipes needs --name: the connection the recipes use"))
			}
			cat, err := catalog.Default()
			if err != nil {
				return connectFail(sub, err)
			}
			rs, err := catalog.LoadRecipes(cat, strings.Split(*recipes, ",")...)
			if err != nil {
				return connectFail(sub, err)
			}
			req.Scopes = connectMergeScopes(req.Scopes, auth.RequiredScopes(cat, rs, *name))
		}
		if len(req.Scopes) == 0 {
			return connectFail(sub, errors.New("no scopes: pass --scopes or --recipes"))
		}
		redirectURL := *redirect
		if redirectURL == "" {
			redirectURL = "http://" + *listen + "/oauth/callback"
		}
		store, rdb, err := sf.open(ctx, &of, redirectURL)
		if err != nil {
			return connectFail(sub, err)
		}
		defer rdb.Close()
		return connectInstall(ctx, store, req, *listen, *wait, func(err error) int { return connectFail(sub, err) })
	}
}

// secretFlags are the flags of token and basic.
type secretFlags struct {
	store                                 storeFlags
	app, name, location, company, baseURL string
}

func (c *secretFlags) register(fs *flag.FlagSet, defaultApp string) {
	c.store.register(fs)
	fs.StringVar(&c.app, "app", defaultApp, "app id: ghl, referralrock, referrizer")
	fs.StringVar(&c.name, "name", "", "connection id (recipes name it)")
	fs.StringVar(&c.location, "location", "", "location (sub-account) id")
	fs.StringVar(&c.company, "company", "", "company (agency) id")
	fs.StringVar(&c.baseURL, "base-url", "", "send this connection's requests to this base URL (a simulator)")
}

// put stores the connection with cred.
func (c *secretFlags) put(ctx context.Context, sub string, kind string, read func() (auth.Credential, error)) int {
	if c.name == "" {
		return connectUsageError(sub, "--name is required")
	}
	if err := checkApp(c.app); err != nil {
		return connectFail(sub, err)
	}
	cred, err := read()
	if err != nil {
		return connectFail(sub, err)
	}
	store, rdb, err := c.store.open(ctx, nil, "")
	if err != nil {
		return connectFail(sub, err)
	}
	defer rdb.Close()
	conn := auth.Connection{ID: c.name, App: c.app, Kind: kind, LocationID: c.location, CompanyID: c.company, BaseURL: c.baseURL}
	if err := store.Put(ctx, conn, cred); err != nil {
		return connectFail(sub, err)
	}
	fmt.Printf("stored connection %s (%s, %s)\n", conn.ID, conn.App, conn.Kind)
	return 0
}

func setupConnectToken(fs *flag.FlagSet) runFunc {
	var sf secretFlags
	sf.register(fs, "ghl")
	tokenEnv := fs.String("token-env", "", "environment variable holding the token (default: read standard input)")
	return func(ctx context.Context, args []string) int {
		if len(args) > 0 {
			return connectUsageError("token", fmt.Sprintf("unexpected argument %q (the connection is --name)", args[0]))
		}
		kind := auth.KindAPIKey
		if sf.app == "ghl" {
			kind = auth.KindPrivate
		}
		return sf.put(ctx, "token", kind, func() (auth.Credential, error) {
			tok, err := connectReadSecret(*tokenEnv, "token")
			return auth.Credential{AccessToken: tok}, err
		})
	}
}

func setupConnectBasic(fs *flag.FlagSet) runFunc {
	var sf secretFlags
	sf.register(fs, "referralrock")
	username := fs.String("username", "", "HTTP Basic user name (Referral Rock public key)")
	passwordEnv := fs.String("password-env", "", "environment variable holding the password (default: read standard input)")
	return func(ctx context.Context, args []string) int {
		if len(args) > 0 {
			return connectUsageError("basic", fmt.Sprintf("unexpected argument %q (the connection is --name)", args[0]))
		}
		if *username == "" {
			return connectUsageError("basic", "--username is required")
		}
		return sf.put(ctx, "basic", auth.KindBasic, func() (auth.Credential, error) {
			pw, err := connectReadSecret(*passwordEnv, "password")
			return auth.Credential{Username: *username, Password: pw}, err
		})
	}
}

func setupConnectExchange(fs *flag.FlagSet) runFunc {
	var sf storeFlags
	var of oauthFlags
	sf.register(fs)
	of.register(fs)
	from := fs.String("from", "", "the agency connection")
	location := fs.String("location", "", "the location (sub-account) id")
	name := fs.String("name", "", "id of the new connection (default FROM-LOCATION)")
	return func(ctx context.Context, args []string) int {
		const sub = "exchange"
		if len(args) > 0 {
			return connectUsageError(sub, fmt.Sprintf("unexpected argument %q", args[0]))
		}
		if *from == "" || *location == "" {
			return connectUsageError(sub, "--from (the agency connection) and --location are required")
		}
		id := *name
		if id == "" {
			id = *from + "-" + *location
		}
		store, rdb, err := sf.open(ctx, &of, "")
		if err != nil {
			return connectFail(sub, err)
		}
		defer rdb.Close()
		c, err := store.ExchangeLocation(ctx, *from, *location, id)
		if err != nil {
			return connectFail(sub, err)
		}
		fmt.Printf("stored connection %s (location %s, through %s)\n", c.ID, c.LocationID, c.Parent)
		return 0
	}
}

func setupConnectList(fs *flag.FlagSet) runFunc {
	var sf storeFlags
	redisFlag(fs, &sf.redisURL)
	fs.StringVar(&sf.prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	return func(ctx context.Context, args []string) int {
		if len(args) > 0 {
			return connectUsageError("list", fmt.Sprintf("unexpected argument %q", args[0]))
		}
		rdb, err := sf.connectRedis(ctx)
		if err != nil {
			return connectFail("list", err)
		}
		defer rdb.Close()
		list, err := auth.ListConnections(ctx, rdb, sf.prefix)
		if err != nil {
			return connectFail("list", err)
		}
		printConnections(list)
		// The pauses of connections outside the store (static ones).
		states, err := connstate.New(rdb, sf.prefix).All(ctx)
		if err != nil {
			return connectFail("list", err)
		}
		for _, c := range list {
			delete(states, c.ID)
		}
		for _, id := range slices.Sorted(maps.Keys(states)) {
			fmt.Printf("engine paused %s: %s ('ghlflow connect resume %s' when fixed)\n", id, states[id].Reason, id)
		}
		// The engine's stretches: resources whose subscriptions ask for
		// more than their API budget.
		stretched, err := ratelimit.Stretches(ctx, rdb, sf.prefix)
		if err != nil {
			return connectFail("list", err)
		}
		for _, st := range stretched {
			fmt.Printf("engine stretches polls of %s %s %.2f×: %s\n", st.App, st.Resource, st.Factor, st.Reason)
		}
		return 0
	}
}

func printConnections(list []auth.Connection) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPP\tKIND\tLOCATION\tCOMPANY\tSTATUS\tEXPIRES\tSCOPES")
	for _, c := range list {
		exp := "-"
		if !c.ExpiresAt.IsZero() {
			exp = c.ExpiresAt.Local().Format(time.DateTime)
		}
		status := c.Status
		if c.Reason != "" {
			status += " (" + c.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", c.ID, c.App, c.Kind, connectDash(c.LocationID), connectDash(c.CompanyID),
			status, exp, len(c.Scopes))
	}
	tw.Flush()
}

// storeAction sets up a subcommand that acts on one named connection of
// the store.
func storeAction(sub string, fs *flag.FlagSet, oauth bool, act func(ctx context.Context, store *auth.Store, rdb redis.UniversalClient, prefix, name string) error) runFunc {
	var sf storeFlags
	sf.register(fs)
	var of *oauthFlags
	if oauth {
		of = &oauthFlags{}
		of.register(fs)
	}
	return func(ctx context.Context, args []string) int {
		name := oneName(sub, args)
		if name == "" {
			return 2
		}
		store, rdb, err := sf.open(ctx, of, "")
		if err != nil {
			return connectFail(sub, err)
		}
		defer rdb.Close()
		if err := act(ctx, store, rdb, sf.prefix, name); err != nil {
			return connectFail(sub, err)
		}
		return 0
	}
}

func setupConnectRefresh(fs *flag.FlagSet) runFunc {
	return storeAction("refresh", fs, true, func(ctx context.Context, store *auth.Store, _ redis.UniversalClient, _, name string) error {
		r, err := store.Refresh(ctx, name)
		if err != nil {
			return err
		}
		fmt.Printf("refreshed %s; the new token expires %s\n", r.Conn.ID, r.Cred.ExpiresAt.Local().Format(time.DateTime))
		return nil
	})
}

func setupConnectPause(fs *flag.FlagSet) runFunc {
	reason := fs.String("reason", "paused from the command line", "why, shown by list")
	return storeAction("pause", fs, false, func(ctx context.Context, store *auth.Store, _ redis.UniversalClient, _, name string) error {
		if err := store.SetStatus(ctx, name, auth.StatusPaused, *reason); err != nil {
			return err
		}
		fmt.Printf("%s: %s\n", name, auth.StatusPaused)
		return nil
	})
}

func setupConnectResume(fs *flag.FlagSet) runFunc {
	return storeAction("resume", fs, false, func(ctx context.Context, store *auth.Store, rdb redis.UniversalClient, prefix, name string) error {
		err := store.SetStatus(ctx, name, auth.StatusOK, "")
		if errors.Is(err, auth.ErrNotFound) {
			// A static connection (not in the store) has a state too.
			err = connstate.New(rdb, prefix).Lift(ctx, name)
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s\n", name, auth.StatusOK)
		return nil
	})
}

func setupConnectRemove(fs *flag.FlagSet) runFunc {
	return storeAction("remove", fs, false, func(ctx context.Context, store *auth.Store, _ redis.UniversalClient, _, name string) error {
		if _, err := store.Get(ctx, name); err != nil {
			return err
		}
		if err := store.Delete(ctx, name); err != nil {
			return err
		}
		fmt.Printf("removed %s\n", name)
		return nil
	})
}

func setupConnectReseal(fs *flag.FlagSet) runFunc {
	var sf storeFlags
	sf.register(fs)
	return func(ctx context.Context, args []string) int {
		if len(args) > 0 {
			return connectUsageError("reseal", fmt.Sprintf("unexpected argument %q", args[0]))
		}
		store, rdb, err := sf.open(ctx, nil, "")
		if err != nil {
			return connectFail("reseal", err)
		}
		defer rdb.Close()
		n, err := store.Reseal(ctx)
		if err != nil {
			return connectFail("reseal", err)
		}
		fmt.Printf("re-sealed %d credential(s) with the newest key\n", n)
		return 0
	}
}

// connectInstall runs the OAuth install: a local server receives the
// callback while the user approves the install in a browser.
func connectInstall(ctx context.Context, store *auth.Store, req auth.InstallRequest, listen string, wait time.Duration, fail func(error) int) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fail(fmt.Errorf("listen for the callback: %w", err))
	}
	type result struct {
		conns []auth.Connection
		err   error
	}
	done := make(chan result, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if e := q.Get("error"); e != "" {
			http.Error(w, "the install was not approved: "+e, http.StatusBadRequest)
			select {
			case done <- result{err: fmt.Errorf("install not approved: %s", e)}:
			default:
			}
			return
		}
		conns, err := store.FinishInstall(r.Context(), q.Get("state"), q.Get("code"))
		if errors.Is(err, auth.ErrBadState) {
			// Not ours (or replayed): refuse, keep waiting for the real one.
			http.Error(w, "this install link is invalid, was already used or has expired", http.StatusBadRequest)
			return
		}
		if err != nil {
			http.Error(w, "the install failed: "+auth.Redact(err.Error()), http.StatusBadGateway)
		} else {
			fmt.Fprintln(w, "Connected. You can close this page and return to the terminal.")
		}
		select {
		case done <- result{conns: conns, err: err}:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	u, err := store.StartInstall(ctx, req)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("Open this URL in a browser and approve the install:\n\n  %s\n\nWaiting for the callback on http://%s/oauth/callback ...\n", u, ln.Addr())
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	select {
	case <-ctx.Done():
		return fail(fmt.Errorf("no callback within %s", wait))
	case res := <-done:
		if res.err != nil {
			return fail(res.err)
		}
		for _, c := range res.conns {
			where := "location " + c.LocationID
			if c.LocationID == "" {
				where = "agency " + c.CompanyID
			}
			fmt.Printf("stored connection %s (%s, %s, %d scopes)\n", c.ID, c.App, where, len(c.Scopes))
		}
	}
	return 0
}

// readSecret reads a secret from the named environment variable, or the
// first line of standard input.
func connectReadSecret(env, what string) (string, error) {
	if env != "" {
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", env)
		}
		return v, nil
	}
	fmt.Fprintf(os.Stderr, "%s: ", what)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("no %s given", what)
	}
	return line, nil
}

func connectSplit(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func connectMergeScopes(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(a, b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func connectDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
