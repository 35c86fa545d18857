package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

const tenantUsage = `usage: ghlflow tenant COMMAND [flags] [ID] [ARGS]

Tenants are the customers the engine serves: each runs every recipe that
names roles (connection: ghl) through its own connections. Every running
engine sees a change within a few seconds.

commands:
  add ID [--name N] [--label k=v]... [--connection ROLE=CONNECTION]...
            create a tenant, or add a name, labels and connections to it
  list      list the tenants
  show ID   show one tenant
  label ID k=v... [k-]...
            set labels (k- deletes label k)
  pause ID  stop polling the tenant's subscriptions (state is kept)
  resume ID poll them again
  remove ID remove the tenant and delete all of its state
`

// runTenant is `ghlflow tenant`: manages the tenants stored in Redis.
func runTenant(ctx context.Context, args []string) int {
	return tenantMain(ctx, args, os.Stdout, os.Stderr)
}

func tenantMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, tenantUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("tenant "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	prefix := fs.String("prefix", "ghlflow:", "prefix of the engine's Redis keys")
	var labels, conns multiFlag
	name := new(string)
	if sub == "add" {
		fs.StringVar(name, "name", "", "the tenant's display name")
		fs.Var(&labels, "label", "a label k=v (repeatable)")
		fs.Var(&conns, "connection", "ROLE=CONNECTION: the connection filling a role, e.g. ghl=ghl-loc123 (repeatable)")
	}
	// The id may come before or after the flags.
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	rdb, err := dialRedis(*redisURL)
	if err != nil {
		fmt.Fprintln(stderr, "ghlflow tenant: --redis:", err)
		return 2
	}
	defer rdb.Close()
	t := tenantCmd{rdb: rdb, prefix: *prefix, store: tenant.NewStore(rdb, *prefix), out: stdout}
	switch {
	case sub == "list" && len(pos) == 0:
		err = t.list(ctx)
	case sub == "add" && len(pos) == 1:
		err = t.add(ctx, pos[0], *name, labels, conns)
	case sub == "show" && len(pos) == 1:
		err = t.show(ctx, pos[0])
	case sub == "label" && len(pos) >= 2:
		err = t.label(ctx, pos[0], pos[1:])
	case (sub == "pause" || sub == "resume") && len(pos) == 1:
		err = t.status(ctx, pos[0], map[string]string{"pause": tenant.StatusPaused, "resume": tenant.StatusActive}[sub])
	case sub == "remove" && len(pos) == 1:
		err = t.remove(ctx, pos[0])
	default:
		fmt.Fprint(stderr, tenantUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "ghlflow tenant "+sub+":", err)
		return 1
	}
	return 0
}

// tenantCmd runs the tenant subcommands against one Redis.
type tenantCmd struct {
	rdb    redis.UniversalClient
	prefix string
	store  *tenant.Store
	out    io.Writer
}

func (c tenantCmd) add(ctx context.Context, id, name string, labels, conns []string) error {
	lm, err := tenant.ParsePairs("label", labels)
	if err != nil {
		return err
	}
	cm, err := tenant.ParsePairs("connection", conns)
	if err != nil {
		return err
	}
	t, err := c.store.Get(ctx, id)
	if errors.Is(err, tenant.ErrNotFound) {
		t, err = &tenant.Tenant{ID: id, Status: tenant.StatusActive}, nil
	}
	if err != nil {
		return err
	}
	if name != "" {
		t.Name = name
	}
	t.Labels = merge(t.Labels, lm)
	t.Connections = merge(t.Connections, cm)
	if err := c.store.Put(ctx, t); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "tenant %s stored (connections %s)\n", t.ID, tenant.FormatPairs(t.Connections))
	return nil
}

func merge(into, from map[string]string) map[string]string {
	if len(from) == 0 {
		return into
	}
	if into == nil {
		into = map[string]string{}
	}
	for k, v := range from {
		into[k] = v
	}
	return into
}

func (c tenantCmd) list(ctx context.Context) error {
	ts, _, err := c.store.List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tSTATUS\tLABELS\tCONNECTIONS")
	for _, t := range ts {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Status, tenant.FormatPairs(t.Labels), tenant.FormatPairs(t.Connections))
	}
	return w.Flush()
}

func (c tenantCmd) show(ctx context.Context, id string) error {
	t, err := c.store.Get(ctx, id)
	if err != nil {
		return err
	}
	subs, err := c.store.Subs(ctx, id)
	if err != nil {
		return err
	}
	slices.Sort(subs)
	recipes := "all"
	if len(t.Recipes) > 0 {
		recipes = strings.Join(t.Recipes, ",")
	}
	fmt.Fprintf(c.out, "id:            %s\nname:          %s\nstatus:        %s\nlabels:        %s\nconnections:   %s\nrecipes:       %s\nsubscriptions: %s\n",
		t.ID, t.Name, t.Status, tenant.FormatPairs(t.Labels), tenant.FormatPairs(t.Connections), recipes, strings.Join(subs, " "))
	return nil
}

func (c tenantCmd) label(ctx context.Context, id string, args []string) error {
	_, err := c.store.Update(ctx, id, func(t *tenant.Tenant) error {
		for _, a := range args {
			if k, ok := strings.CutSuffix(a, "-"); ok && !strings.Contains(a, "=") {
				delete(t.Labels, k)
				continue
			}
			m, err := tenant.ParsePairs("label", []string{a})
			if err != nil {
				return err
			}
			t.Labels = merge(t.Labels, m)
		}
		return nil
	})
	return err
}

func (c tenantCmd) status(ctx context.Context, id, status string) error {
	_, err := c.store.Update(ctx, id, func(t *tenant.Tenant) error { t.Status = status; return nil })
	if err == nil {
		fmt.Fprintf(c.out, "tenant %s is %s\n", id, status)
	}
	return err
}

func (c tenantCmd) remove(ctx context.Context, id string) error {
	if _, err := c.store.Get(ctx, id); err != nil {
		return err
	}
	rep, err := engine.RemoveTenant(ctx, c.rdb, c.prefix, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "tenant %s removed: %d subscriptions, %d keys, %d queued tasks, %d stored connections deleted\n",
		id, rep.Subscriptions, rep.Keys, rep.Tasks, rep.Connections)
	return nil
}
