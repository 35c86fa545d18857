package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

// tenantCommand is `ghlflow tenant`: manages the tenants stored in Redis.
// Its subcommands write to stdout and stderr.
func tenantCommand(stdout, stderr io.Writer) *command {
	leaf := func(name, summary, args string, minArgs, maxArgs int, extra func(fs *flag.FlagSet) func(tenantCmd, []string) func(context.Context) error) *command {
		return &command{name: name, summary: summary, args: args, setup: func(fs *flag.FlagSet) runFunc {
			var redisURL, prefix string
			redisFlag(fs, &redisURL)
			fs.StringVar(&prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
			act := extra(fs)
			return func(ctx context.Context, pos []string) int {
				if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
					fmt.Fprintf(stderr, "usage: ghlflow tenant %s %s\nRun 'ghlflow tenant %s --help' for its flags.\n", name, args, name)
					return 2
				}
				rdb, err := dialRedis(redisURL)
				if err != nil {
					fmt.Fprintln(stderr, "ghlflow tenant:", err)
					return 2
				}
				defer rdb.Close()
				t := tenantCmd{rdb: rdb, prefix: prefix, store: tenant.NewStore(rdb, prefix), out: stdout}
				if err := act(t, pos)(ctx); err != nil {
					fmt.Fprintln(stderr, "ghlflow tenant "+name+":", err)
					return 1
				}
				return 0
			}
		}}
	}
	noFlags := func(f func(t tenantCmd, pos []string) func(context.Context) error) func(*flag.FlagSet) func(tenantCmd, []string) func(context.Context) error {
		return func(*flag.FlagSet) func(tenantCmd, []string) func(context.Context) error { return f }
	}
	status := func(st string) func(*flag.FlagSet) func(tenantCmd, []string) func(context.Context) error {
		return noFlags(func(t tenantCmd, pos []string) func(context.Context) error {
			return func(ctx context.Context) error { return t.status(ctx, pos[0], st) }
		})
	}
	return &command{name: "tenant", summary: "add, list, label, pause and remove the tenants recipes run for",
		details: "Tenants are the customers the engine serves: each runs every recipe that names roles\n" +
			"(connection: ghl) through its own connections. Every running engine sees a change within a few seconds.",
		subs: []*command{
			leaf("add", "create a tenant, or add a name, labels and connections to it", "ID", 1, 1, func(fs *flag.FlagSet) func(tenantCmd, []string) func(context.Context) error {
				name := fs.String("name", "", "the tenant's display name")
				var labels, conns multiFlag
				fs.Var(&labels, "label", "a label k=v (repeatable)")
				fs.Var(&conns, "connection", "ROLE=CONNECTION: the connection filling a role, e.g. ghl=ghl-loc123 (repeatable); "+
					"it must be in the connection store or in --connections")
				connFile := fs.String("connections", "", "static connections file (YAML) the engine runs with: its connections count as known (their secrets are not read)")
				allowMissing := fs.Bool("allow-missing", false, "accept --connection naming a connection not stored yet (an install still to come)")
				return func(t tenantCmd, pos []string) func(context.Context) error {
					return func(ctx context.Context) error {
						return t.add(ctx, pos[0], *name, labels, conns, connCheck{file: *connFile, allowMissing: *allowMissing})
					}
				}
			}),
			leaf("list", "list the tenants", "", 0, 0, noFlags(func(t tenantCmd, _ []string) func(context.Context) error { return t.list })),
			leaf("show", "show one tenant", "ID", 1, 1, noFlags(func(t tenantCmd, pos []string) func(context.Context) error {
				return func(ctx context.Context) error { return t.show(ctx, pos[0]) }
			})),
			leaf("label", "set labels (k- deletes label k)", "ID k=v... [k-]...", 2, -1, noFlags(func(t tenantCmd, pos []string) func(context.Context) error {
				return func(ctx context.Context) error { return t.label(ctx, pos[0], pos[1:]) }
			})),
			leaf("pause", "stop polling the tenant's subscriptions (state is kept)", "ID", 1, 1, status(tenant.StatusPaused)),
			leaf("resume", "poll the tenant's subscriptions again", "ID", 1, 1, status(tenant.StatusActive)),
			leaf("remove", "remove the tenant and delete all of its state", "ID", 1, 1, noFlags(func(t tenantCmd, pos []string) func(context.Context) error {
				return func(ctx context.Context) error { return t.remove(ctx, pos[0]) }
			})),
		}}
}

// tenantMain runs `ghlflow tenant ARGS` with the given output.
func tenantMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, tenantCommand(stdout, stderr), "ghlflow tenant", args, stdout, stderr)
}

// tenantCmd runs the tenant subcommands against one Redis.
type tenantCmd struct {
	rdb    redis.UniversalClient
	prefix string
	store  *tenant.Store
	out    io.Writer
}

// connCheck is how `tenant add` checks the connections it is given.
type connCheck struct {
	// file is the static connections file; "" = none.
	file string
	// allowMissing accepts connections found nowhere.
	allowMissing bool
}

func (c tenantCmd) add(ctx context.Context, id, name string, labels, conns []string, check connCheck) error {
	lm, err := tenant.ParsePairs("label", labels)
	if err != nil {
		return err
	}
	cm, err := tenant.ParsePairs("connection", conns)
	if err != nil {
		return err
	}
	if err := c.checkConnections(ctx, cm, check); err != nil {
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

// checkConnections refuses a connection of cm (role → connection id) that
// is neither in the connection store nor in the static file, unless
// check.allowMissing: every poll of the tenant would fail for it.
func (c tenantCmd) checkConnections(ctx context.Context, cm map[string]string, check connCheck) error {
	var static []auth.Connection
	if check.file != "" {
		var err error
		if static, err = auth.LoadStaticMetadata(check.file); err != nil {
			return fmt.Errorf("--connections: %w", err)
		}
	}
	if len(cm) == 0 || check.allowMissing {
		return nil
	}
	err := auth.CheckConnections(ctx, c.rdb, c.prefix, static, cm)
	var unknown *auth.UnknownConnectionError
	if !errors.As(err, &unknown) {
		return err
	}
	where := "not in the connection store (prefix " + c.prefix + "), and no --connections FILE names static ones"
	if check.file != "" {
		where = "in neither the connection store (prefix " + c.prefix + ") nor " + check.file
	}
	return fmt.Errorf("unknown connection %s: %s\nknown connections: %s\n"+
		"fix: correct the name, store the connection first ('ghlflow connect token|basic|install --name %s ...'), "+
		"name the connections file that has it (--connections FILE), or pass --allow-missing when it will be installed later",
		unknown.List(), where, auth.KnownList(unknown.Known, 20), unknown.Conns[unknown.Roles[0]])
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
