package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
)

const apikeyDetails = `API keys open the HTTP API, the pages and /monitoring. An operator key
reaches everything; a tenant key (--tenant ID) only that tenant's objects.
A key is printed once, when it is made: only its hash is stored.
GHLFLOW_ADMIN_TOKEN, when set in the server's environment, is one more
operator key that is never stored.`

// apikeyCommand is `ghlflow apikey`: makes, lists and revokes the keys of
// the HTTP API. Its subcommands write to stdout and stderr.
func apikeyCommand(stdout, stderr io.Writer) *command {
	leaf := func(name, summary, args string, nargs int, tenantFlag bool, act func(ctx context.Context, keys *apikey.Store, tenantID, keyName string, pos []string) error) *command {
		return &command{name: name, summary: summary, args: args, setup: func(fs *flag.FlagSet) runFunc {
			var redisURL, prefix, tenantID, keyName string
			redisFlag(fs, &redisURL)
			fs.StringVar(&prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
			if tenantFlag {
				fs.StringVar(&tenantID, "tenant", "", "the tenant's keys (\"\" = an operator key, or every key for list)")
			}
			if name == "create" {
				fs.StringVar(&keyName, "name", "", "what the key is for")
			}
			return func(ctx context.Context, pos []string) int {
				if len(pos) != nargs {
					fmt.Fprintf(stderr, "usage: ghlflow apikey %s %s\nRun 'ghlflow apikey %s --help' for its flags.\n", name, args, name)
					return 2
				}
				rdb, err := dialRedis(redisURL)
				if err != nil {
					fmt.Fprintln(stderr, "ghlflow apikey:", err)
					return 2
				}
				defer rdb.Close()
				if err := act(ctx, apikey.New(rdb, prefix, ""), tenantID, keyName, pos); err != nil {
					fmt.Fprintln(stderr, "ghlflow apikey "+name+":", err)
					return 1
				}
				return 0
			}
		}}
	}
	return &command{name: "apikey", summary: "create, list and revoke the keys of the HTTP API", details: apikeyDetails,
		subs: []*command{
			leaf("create", "make a key and print it (once)", "", 0, true, func(ctx context.Context, keys *apikey.Store, tenantID, keyName string, _ []string) error {
				secret, k, err := keys.Create(ctx, tenantID, keyName)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "key %s made for %s; it is shown once:\n", k.ID, scopeOf(k))
				fmt.Fprintln(stdout, secret)
				return nil
			}),
			leaf("list", "list the keys (never the keys themselves)", "", 0, true, func(ctx context.Context, keys *apikey.Store, tenantID, _ string, _ []string) error {
				return listKeys(ctx, keys, tenantID, stdout)
			}),
			leaf("revoke", "revoke a key", "KEY_ID", 1, false, func(ctx context.Context, keys *apikey.Store, _, _ string, pos []string) error {
				if err := keys.Revoke(ctx, "", pos[0]); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "key %s revoked\n", pos[0])
				return nil
			}),
		}}
}

// apikeyMain runs `ghlflow apikey ARGS` with the given output.
func apikeyMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, apikeyCommand(stdout, stderr), "ghlflow apikey", args, stdout, stderr)
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
