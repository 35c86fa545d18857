package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
)

const apikeyUsage = `usage: ghlflow apikey COMMAND [flags]

API keys open the HTTP API, the pages and /monitoring. An operator key
reaches everything; a tenant key (--tenant ID) only that tenant's objects.
A key is printed once, when it is made: only its hash is stored.
GHLFLOW_ADMIN_TOKEN, when set in the server's environment, is one more
operator key that is never stored.

commands:
  create [--tenant ID] [--name NAME]   make a key and print it
  list   [--tenant ID]                 list the keys (never the keys themselves)
  revoke KEY_ID                        revoke a key
`

// runAPIKey is `ghlflow apikey`.
func runAPIKey(ctx context.Context, args []string) int {
	return apikeyMain(ctx, args, os.Stdout, os.Stderr)
}

func apikeyMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, apikeyUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("apikey "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	prefix := fs.String("prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	tenantID := fs.String("tenant", "", "the tenant a key reaches (\"\" = an operator key)")
	name := fs.String("name", "", "what the key is for")
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if args = fs.Args(); len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		fmt.Fprintln(stderr, "ghlflow apikey: --redis:", err)
		return 2
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys := apikey.New(rdb, *prefix, "")
	switch {
	case sub == "create" && len(pos) == 0:
		var secret string
		var k apikey.Key
		if secret, k, err = keys.Create(ctx, *tenantID, *name); err == nil {
			fmt.Fprintf(stderr, "key %s made for %s; it is shown once:\n", k.ID, scopeOf(k))
			fmt.Fprintln(stdout, secret)
		}
	case sub == "list" && len(pos) == 0:
		err = listKeys(ctx, keys, *tenantID, stdout)
	case sub == "revoke" && len(pos) == 1:
		if err = keys.Revoke(ctx, "", pos[0]); err == nil {
			fmt.Fprintf(stdout, "key %s revoked\n", pos[0])
		}
	default:
		fmt.Fprint(stderr, apikeyUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "ghlflow apikey "+sub+":", err)
		return 1
	}
	return 0
}

func scopeOf(k apikey.Key) string {
	if k.Operator() {
		return "an operator"
	}
	return "tenant " + k.Tenant
}

func listKeys(ctx context.Context, keys *apikey.Store, tenantID string, out io.Writer) error {
	ks, err := keys.List(ctx, tenantID)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTENANT\tNAME\tCREATED")
	for _, k := range ks {
		t := k.Tenant
		if t == "" {
			t = "(operator)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.ID, t, k.Name, k.Created.Format("2006-01-02 15:04"))
	}
	return w.Flush()
}
