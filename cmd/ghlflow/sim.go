package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/catalog/sim"
)

// simCommand is `ghlflow sim`: the simulator as a process. It prints the
// base URL and one ready-made credential per location and app, then serves
// until interrupted.
func simCommand() *command {
	return &command{name: "sim", summary: "run the simulator of the GHL API and the referral apps",
		details: simDetails(), setup: func(fs *flag.FlagSet) runFunc {
			var o simOptions
			fs.StringVar(&o.addr, "addr", "127.0.0.1:8788", "address to listen on")
			fs.IntVar(&o.locations, "locations", 1, "number of locations (sub-accounts) to create")
			fs.IntVar(&o.seed, "seed", 0, "objects of each kind to generate per location")
			fs.Float64Var(&o.churn, "churn", 0, "changes per second, in turn: a new contact, a contact updated, a new task, "+
				"a new opportunity, a new Referral Rock referral, a new Referrizer contact (0 = none)")
			fs.StringVar(&o.faults, "faults", "", "fault injection, e.g. latency=50ms,jitter=20ms,5xx=0.02,timeout=0.01,reset=0.01,429=20")
			fs.DurationVar(&o.ttl, "token-ttl", 24*time.Hour, "lifetime of access tokens")
			fs.IntVar(&o.burst, "burst", 0, "GHL burst budget per interval and location (0 = 100, -1 = unlimited)")
			fs.IntVar(&o.daily, "daily", 0, "GHL daily budget per location (0 = 200000, -1 = unlimited)")
			fs.BoolVar(&o.rsa, "webhook-rsa", false, "also sign webhooks with a legacy RSA key (x-wh-signature)")
			fs.Var(&o.hooks, "webhook", "URL to POST webhook events to (repeatable)")
			return func(ctx context.Context, args []string) int {
				if len(args) > 0 {
					fmt.Fprintf(os.Stderr, "ghlflow sim: unexpected argument %q\n", args[0])
					return 2
				}
				return runSim(ctx, o)
			}
		}}
}

// simDetails lists the simulator's own endpoints for its help.
func simDetails() string {
	var b strings.Builder
	b.WriteString("The simulator answers the catalog's operations of every app on one address, and its own\nendpoints (no auth):\n\n")
	for _, ep := range sim.AdminEndpoints {
		fmt.Fprintf(&b, "  %-5s %-25s %s\n", ep.Method, ep.Path, ep.Description)
	}
	return b.String()
}

type simOptions struct {
	addr            string
	locations, seed int
	churn           float64
	faults          string
	ttl             time.Duration
	burst, daily    int
	rsa             bool
	hooks           multiFlag
}

func runSim(ctx context.Context, o simOptions) int {
	nLocs, seed, churn, faults, ttl, burst, daily, rsaSig, hooks, addr := &o.locations, &o.seed, &o.churn, &o.faults, &o.ttl, &o.burst, &o.daily, &o.rsa, o.hooks, &o.addr
	f, err := sim.ParseFaults(*faults)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow sim:", err)
		return 2
	}
	cat, err := catalog.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow sim: load catalog:", err)
		return 1
	}
	srv := sim.New(cat, sim.Config{TokenTTL: *ttl, Faults: f, Burst: *burst, Daily: *daily,
		WebhookRSA: *rsaSig, WebhookURLs: hooks, Seed: uint64(time.Now().UnixNano())})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghlflow sim: listen:", err)
		return 1
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("ghlflow simulator at %s\n", base)
	fmt.Printf("OAuth client: client_id=%s client_secret=%s authorize=%s/oauth/chooselocation\n",
		"sim-client", "sim-secret", base)
	agency := srv.IssueToken(sim.TokenSpec{Private: true})
	fmt.Printf("agency token (company %s): %s\n", agency.CompanyID, agency.AccessToken)
	for i := 0; i < *nLocs; i++ {
		loc := srv.NewID()
		srv.AddLocation(loc)
		t := srv.IssueToken(sim.TokenSpec{LocationID: loc})
		rr := srv.IssueToken(sim.TokenSpec{App: "referralrock", LocationID: loc})
		rz := srv.IssueToken(sim.TokenSpec{App: "referrizer", LocationID: loc})
		fmt.Printf("location %s\n  ghl access_token=%s refresh_token=%s\n  referralrock user=%s password=%s\n  referrizer token=%s\n",
			loc, t.AccessToken, t.RefreshToken, rr.Username, rr.Password, rz.AccessToken)
	}
	if *seed > 0 {
		srv.Seed(*seed)
		fmt.Printf("seeded %d objects of each kind per location\n", *seed)
	}
	fmt.Printf("webhook public key (Ed25519, PEM):\n%s", srv.WebhookPublicKeyPEM())
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go srv.RunChurn(ctx, *churn)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "ghlflow sim: serve:", err)
		return 1
	}
	return 0
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Repeatable marks the flag as a list for config.Apply.
func (m *multiFlag) Repeatable() {}
