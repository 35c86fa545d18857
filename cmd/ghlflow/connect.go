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

const connectUsage = `usage: ghlflow connect [SUBCOMMAND] [flags]

Subcommands:
  install   (default) OAuth install from a terminal: prints the authorize URL,
            receives the callback on -listen, stores the connection
  token     store a Private Integration token or API token (read from
            -token-env or standard input, never from a flag)
  basic     store HTTP Basic keys (Referral Rock: public key as -username,
            private key from -password-env or standard input)
  exchange  make a location connection from an agency connection
  list      list connections and their status
  refresh   refresh a connection's OAuth token now
  pause     pause a connection (-reason); resume sets it back to ok
  resume
  remove    delete a connection
  reseal    re-seal every credential with the newest key (after rotation)
  keygen    print a new random key for GHLFLOW_SECRET_KEY

Environment: REDIS_ADDR, GHLFLOW_SECRET_KEY or GHLFLOW_SECRET_KEY_FILE,
GHLFLOW_GHL_CLIENT_ID, GHLFLOW_GHL_CLIENT_SECRET, GHLFLOW_GHL_BASE_URL.
`

// connectFlags are the flags every connect subcommand shares.
type connectFlags struct {
	redisAddr, prefix, baseURL, clientID, clientSecret, devKeyFile string
	redisDB                                                        int
	dev                                                            bool
}

func (c *connectFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.redisAddr, "redis", connectEnvOr("REDIS_ADDR", "127.0.0.1:6379"), "Redis address, or a redis:// URL as run takes")
	fs.IntVar(&c.redisDB, "redis-db", 0, "Redis database number")
	fs.StringVar(&c.prefix, "prefix", engine.DefaultPrefix, "Redis key prefix")
	fs.StringVar(&c.baseURL, "base-url", os.Getenv("GHLFLOW_GHL_BASE_URL"), "GHL base URL override (a simulator); also used for the OAuth pages")
	fs.StringVar(&c.clientID, "client-id", os.Getenv("GHLFLOW_GHL_CLIENT_ID"), "OAuth client id of the marketplace app")
	fs.StringVar(&c.clientSecret, "client-secret", os.Getenv("GHLFLOW_GHL_CLIENT_SECRET"), "OAuth client secret (prefer the environment)")
	fs.BoolVar(&c.dev, "dev", false, "dev mode: without GHLFLOW_SECRET_KEY, use a generated development key (loudly)")
	fs.StringVar(&c.devKeyFile, "dev-key-file", "", "where dev mode keeps its key")
}

func connectEnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// open connects to Redis and builds the connection store.
func (c *connectFlags) open(ctx context.Context, cat *catalog.Catalog, redirect string) (*auth.Store, *redis.Client, func(), error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	keys, err := auth.LoadKeyring(auth.KeyConfig{Dev: c.dev, DevFile: c.devKeyFile, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	opt := &redis.Options{Addr: c.redisAddr, DB: c.redisDB}
	if strings.Contains(c.redisAddr, "://") {
		// A URL, as `ghlflow run --redis` takes.
		if opt, err = redis.ParseURL(c.redisAddr); err != nil {
			return nil, nil, nil, fmt.Errorf("--redis: %w", err)
		}
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, nil, fmt.Errorf("redis %s: %w", c.redisAddr, err)
	}
	if _, err := auth.MoveLegacyKeys(ctx, rdb, c.prefix); err != nil {
		rdb.Close()
		return nil, nil, nil, err
	}
	oauth := map[string]*auth.OAuthApp{}
	if c.clientID != "" && c.clientSecret != "" {
		app, err := auth.NewOAuthApp(cat.App("ghl"), c.baseURL, c.clientID, c.clientSecret, redirect)
		if err != nil {
			rdb.Close()
			return nil, nil, nil, err
		}
		oauth["ghl"] = app
	}
	store, err := auth.NewStore(auth.StoreConfig{Redis: rdb, Prefix: c.prefix, Keys: keys, OAuth: oauth, Logger: log})
	if err != nil {
		rdb.Close()
		return nil, nil, nil, err
	}
	// Location token exchanges (agency installs, `connect exchange`) go
	// through the transport like any other call.
	store.UseExchanger(transport.New(transport.Config{Catalog: cat, Connections: store, Logger: log}))
	return store, rdb, func() { rdb.Close() }, nil
}

// runConnect is `ghlflow connect`: adds and manages connections.
func runConnect(ctx context.Context, args []string) int {
	sub := "install"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub == "help" {
		fmt.Fprint(os.Stderr, connectUsage)
		return 0
	}
	if sub == "keygen" {
		fmt.Println(auth.GenerateKey())
		return 0
	}
	fs := flag.NewFlagSet("connect "+sub, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, connectUsage+"\nFlags of "+sub+":\n")
		fs.PrintDefaults()
	}
	var cf connectFlags
	cf.register(fs)
	app := fs.String("app", "ghl", "app id: ghl, referralrock, referrizer")
	name := fs.String("name", "", "connection id (recipes name it)")
	scopes := fs.String("scopes", "", "OAuth scopes to ask for, comma-separated")
	recipes := fs.String("recipes", "", "recipe files or folders: ask for the scopes their steps need through -name")
	agency := fs.Bool("agency", false, "agency (Company) install")
	locations := fs.String("locations", "", "agency install: locations to make connections for, comma-separated, or *")
	listen := fs.String("listen", "127.0.0.1:8789", "address the OAuth callback is received on")
	redirect := fs.String("redirect-url", "", "redirect URL registered with the marketplace app (default http://LISTEN/oauth/callback)")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the install to be approved")
	location := fs.String("location", "", "location (sub-account) id")
	company := fs.String("company", "", "company (agency) id")
	tokenEnv := fs.String("token-env", "", "environment variable holding the token (default: read standard input)")
	username := fs.String("username", "", "HTTP Basic user name (Referral Rock public key)")
	passwordEnv := fs.String("password-env", "", "environment variable holding the password (default: read standard input)")
	from := fs.String("from", "", "exchange: the agency connection")
	reason := fs.String("reason", "", "pause: why")
	// Flags may come before or after the connection name.
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		names, args = append(names, fs.Arg(0)), fs.Args()[1:]
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "ghlflow connect %s: %s\n", sub, auth.Redact(err.Error()))
		return 1
	}
	cat, err := catalog.Default()
	if err != nil {
		return fail(err)
	}
	if cat.App(*app) == nil {
		return fail(fmt.Errorf("unknown app %q", *app))
	}
	redirectURL := *redirect
	if redirectURL == "" {
		redirectURL = "http://" + *listen + "/oauth/callback"
	}
	store, rdb, closeStore, err := cf.open(ctx, cat, redirectURL)
	if err != nil {
		return fail(err)
	}
	defer closeStore()
	arg := func() string {
		if len(names) > 0 {
			return names[0]
		}
		return *name
	}
	switch sub {
	case "install":
		req := auth.InstallRequest{App: *app, Name: *name, Agency: *agency, Scopes: connectSplit(*scopes),
			Locations: connectSplit(*locations)}
		if *recipes != "" {
			if *name == "" {
				return fail(errors.New("-recipes needs -name: the connection the recipes use"))
			}
			rs, err := catalog.LoadRecipes(cat, strings.Split(*recipes, ",")...)
			if err != nil {
				return fail(err)
			}
			req.Scopes = connectMergeScopes(req.Scopes, auth.RequiredScopes(cat, rs, *name))
		}
		if len(req.Scopes) == 0 {
			return fail(errors.New("no scopes: pass -scopes or -recipes"))
		}
		return connectInstall(ctx, store, req, *listen, *wait, fail)
	case "token", "basic":
		if *name == "" {
			return fail(errors.New("-name is required"))
		}
		conn := auth.Connection{ID: *name, App: *app, LocationID: *location, CompanyID: *company, BaseURL: cf.baseURL}
		var cred auth.Credential
		if sub == "token" {
			conn.Kind = auth.KindAPIKey
			if *app == "ghl" {
				conn.Kind = auth.KindPrivate
			}
			if cred.AccessToken, err = connectReadSecret(*tokenEnv, "token"); err != nil {
				return fail(err)
			}
		} else {
			conn.Kind = auth.KindBasic
			if *username == "" {
				return fail(errors.New("-username is required"))
			}
			cred.Username = *username
			if cred.Password, err = connectReadSecret(*passwordEnv, "password"); err != nil {
				return fail(err)
			}
		}
		if err := store.Put(ctx, conn, cred); err != nil {
			return fail(err)
		}
		fmt.Printf("stored connection %s (%s, %s)\n", conn.ID, conn.App, conn.Kind)
	case "exchange":
		if *from == "" || *location == "" {
			return fail(errors.New("-from (the agency connection) and -location are required"))
		}
		id := *name
		if id == "" {
			id = *from + "-" + *location
		}
		c, err := store.ExchangeLocation(ctx, *from, *location, id)
		if err != nil {
			return fail(err)
		}
		fmt.Printf("stored connection %s (location %s, through %s)\n", c.ID, c.LocationID, c.Parent)
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			return fail(err)
		}
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
		// The pauses of connections outside the store (static ones).
		states, err := connstate.New(rdb, cf.prefix).All(ctx)
		if err != nil {
			return fail(err)
		}
		for _, c := range list {
			delete(states, c.ID)
		}
		for _, id := range slices.Sorted(maps.Keys(states)) {
			fmt.Printf("engine paused %s: %s ('ghlflow connect resume %s' when fixed)\n", id, states[id].Reason, id)
		}
		// The engine's stretches: resources whose subscriptions ask for
		// more than their API budget.
		stretched, err := ratelimit.Stretches(ctx, rdb, cf.prefix)
		if err != nil {
			return fail(err)
		}
		for _, st := range stretched {
			fmt.Printf("engine stretches polls of %s %s %.2f×: %s\n", st.App, st.Resource, st.Factor, st.Reason)
		}
	case "refresh":
		r, err := store.Refresh(ctx, arg())
		if err != nil {
			return fail(err)
		}
		fmt.Printf("refreshed %s; the new token expires %s\n", r.Conn.ID, r.Cred.ExpiresAt.Local().Format(time.DateTime))
	case "pause", "resume":
		status, why := auth.StatusPaused, *reason
		if sub == "resume" {
			status, why = auth.StatusOK, ""
		} else if why == "" {
			why = "paused from the command line"
		}
		err := store.SetStatus(ctx, arg(), status, why)
		if sub == "resume" && errors.Is(err, auth.ErrNotFound) {
			// A static connection (not in the store) has a state too.
			err = connstate.New(rdb, cf.prefix).Lift(ctx, arg())
		}
		if err != nil {
			return fail(err)
		}
		fmt.Printf("%s: %s\n", arg(), status)
	case "remove":
		if arg() == "" {
			return fail(errors.New("name the connection to remove"))
		}
		if _, err := store.Get(ctx, arg()); err != nil {
			return fail(err)
		}
		if err := store.Delete(ctx, arg()); err != nil {
			return fail(err)
		}
		fmt.Printf("removed %s\n", arg())
	case "reseal":
		n, err := store.Reseal(ctx)
		if err != nil {
			return fail(err)
		}
		fmt.Printf("re-sealed %d credential(s) with the newest key\n", n)
	default:
		fmt.Fprintf(os.Stderr, "ghlflow connect: unknown subcommand %q\n\n%s", sub, connectUsage)
		return 2
	}
	return 0
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
