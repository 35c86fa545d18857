package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/tenant"
)

func loadCatalog() (*catalog.Catalog, bool) {
	c, err := catalog.Default()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ghlflow: the embedded catalog does not load:\n%v\n", err)
		return nil, false
	}
	return c, true
}

// catalogCommand is "ghlflow catalog list|show".
func catalogCommand() *command {
	return &command{name: "catalog", summary: "list and show the operations of the catalog", subs: []*command{
		{name: "list", summary: "list operations, by app, category and kind", setup: func(fs *flag.FlagSet) runFunc {
			var f catalog.Filter
			fs.StringVar(&f.App, "app", "", "only this app (ghl, referralrock, referrizer)")
			fs.StringVar(&f.Category, "category", "", "only this category, e.g. Contacts")
			fs.StringVar(&f.Kind, "kind", "", "only trigger or action")
			format := fs.String("format", "table", "table or json")
			return func(ctx context.Context, args []string) int {
				if len(args) > 0 {
					fmt.Fprintf(os.Stderr, "ghlflow catalog list: unexpected argument %q\n", args[0])
					return 2
				}
				c, ok := loadCatalog()
				if !ok {
					return 1
				}
				return catalogList(os.Stdout, c, f, *format)
			}
		}},
		{name: "show", summary: "show one operation: request, inputs, output and an example", args: "OP", setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, args []string) int {
				if len(args) != 1 {
					fmt.Fprintln(os.Stderr, "usage: ghlflow catalog show OP")
					return 2
				}
				c, ok := loadCatalog()
				if !ok {
					return 1
				}
				return catalogShow(os.Stdout, c, args[0])
			}
		}},
	}}
}

func catalogList(w io.Writer, c *catalog.Catalog, f catalog.Filter, format string) int {
	if f.Kind != "" && f.Kind != catalog.KindTrigger && f.Kind != catalog.KindAction {
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: --kind %q: write trigger or action\n", f.Kind)
		return 2
	}
	if f.App != "" && c.App(f.App) == nil {
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: unknown app %q%s\n", f.App, suggest(f.App, appIDs(c)))
		return 2
	}
	if f.Category != "" && !knownCategory(c, f) {
		var cats []string
		for _, a := range c.Apps() {
			if f.App == "" || a.ID == f.App {
				for _, cat := range c.Categories(a.ID) {
					if !slices.Contains(cats, cat) {
						cats = append(cats, cat)
					}
				}
			}
		}
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: unknown category %q%s (one of: %s)\n", f.Category, suggest(f.Category, cats), strings.Join(cats, ", "))
		return 2
	}
	ops := c.Find(f)
	switch format {
	case "json":
		if ops == nil {
			ops = []*catalog.Operation{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ops); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tCATEGORY\tMETHOD\tPATH\tSCOPE")
		for _, op := range ops {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", op.ID, op.Kind, op.Category, op.Method, op.Path, op.Scope)
		}
		tw.Flush()
		fmt.Fprintf(w, "%d operations\n", len(ops))
	default:
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: --format %q: write table or json\n", format)
		return 2
	}
	return 0
}

func catalogShow(w io.Writer, c *catalog.Catalog, id string) int {
	op := c.Op(id)
	if op == nil {
		msg := fmt.Sprintf("ghlflow catalog show: no operation %q", id)
		if s := c.Suggest(id); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	app := c.App(op.App)
	fmt.Fprintf(w, "%s — %s (%s, %s)\n%s\n\n", op.ID, op.Name, op.Kind, op.Category, op.Description)
	fmt.Fprintf(w, "  request   %s %s%s\n", op.Method, app.BaseURL, op.Path)
	if op.Scope != "" {
		fmt.Fprintf(w, "  scope     %s\n", op.Scope)
	}
	if op.Version != "" {
		fmt.Fprintf(w, "  header    %s: %s\n", app.VersionHeader, op.Version)
	}
	if op.Token != "" {
		fmt.Fprintf(w, "  token     %s\n", op.Token)
	}
	if op.Deprecated {
		fmt.Fprintln(w, "  DEPRECATED by the API")
	}
	if op.Inferred {
		fmt.Fprintln(w, "  INFERRED: the vendor does not document this path; see notes")
	}
	fmt.Fprintln(w, "\ninputs:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, in := range op.Inputs {
		req := ""
		if in.Required {
			req = "required"
		}
		extra := ""
		if len(in.Enum) > 0 {
			extra = "one of " + strings.Join(in.Enum, ", ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", in.Name, in.Type, in.In, req, extra)
	}
	tw.Flush()
	if op.IsTrigger() {
		fmt.Fprintln(w, "\noutput:")
		if op.Items != "" {
			fmt.Fprintf(w, "  items at %q, id %q", op.Items, op.ItemID)
		} else {
			fmt.Fprintf(w, "  one object at %q, id %q", op.Object, op.ItemID)
		}
		if op.ItemCreated != "" {
			fmt.Fprintf(w, ", created %q", op.ItemCreated)
		}
		if op.ItemUpdated != "" {
			fmt.Fprintf(w, ", updated %q", op.ItemUpdated)
		}
		if len(op.ItemFields) > 0 {
			fmt.Fprintf(w, "\n  fields    %s", strings.Join(op.ItemFields, ", "))
		}
		fmt.Fprintf(w, "\n  paging    %s", op.Paging.Style)
		if op.Paging.Limit != "" {
			fmt.Fprintf(w, " (limit %s", op.Paging.Limit)
			for _, p := range []string{op.Paging.Offset, op.Paging.Page} {
				if p != "" {
					fmt.Fprintf(w, ", %s", p)
				}
			}
			for p := range op.Paging.Next {
				fmt.Fprintf(w, ", %s", p)
			}
			fmt.Fprintf(w, " in %s)", orDefault(op.Paging.In, "query"))
		}
		fmt.Fprintf(w, "\n  dedup     %s (default)\n", op.Dedup)
		if op.Since != nil {
			fmt.Fprintf(w, "  since     %s as %s\n", op.Since.Input, op.Since.Format)
		}
	} else if op.Output != "" {
		fmt.Fprintf(w, "\noutput: the object at %q of the response (.steps.N in later steps)\n", op.Output)
	}
	if op.Notes != "" {
		fmt.Fprintf(w, "\nnotes: %s\n", op.Notes)
	}
	fmt.Fprintf(w, "\nexample:\n%s", example(op))
	return 0
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// example prints a recipe fragment using op with its required inputs.
func example(op *catalog.Operation) string {
	var b strings.Builder
	conn := map[string]string{"ghl": "acme", "referralrock": "rr-main", "referrizer": "rz-main"}[op.App]
	if op.IsTrigger() {
		fmt.Fprintf(&b, "trigger:\n  op: %s\n  connection: %s\n  every: 5m\n", op.ID, conn)
		writeInputs(&b, op, "params", "  ", "")
	} else {
		fmt.Fprintf(&b, "steps:\n  - op: %s\n    connection: %s\n", op.ID, conn)
		writeInputs(&b, op, "input", "    ", "{{ .trigger.")
	}
	return b.String()
}

func writeInputs(b *strings.Builder, op *catalog.Operation, key, indent, tmpl string) {
	var req []catalog.Input
	for _, in := range op.Inputs {
		if in.Required && !(op.App == "ghl" && in.Name == catalog.ConnectionLocationInput) && !isPagingInput(op, in.Name) {
			req = append(req, in)
		}
	}
	if len(req) == 0 {
		return
	}
	fmt.Fprintf(b, "%s%s:\n", indent, key)
	for _, in := range req {
		v := "..."
		if tmpl != "" {
			v = tmpl + in.Name + " }}"
		}
		fmt.Fprintf(b, "%s  %s: %q\n", indent, in.Name, v)
	}
}

func isPagingInput(op *catalog.Operation, name string) bool {
	p := op.Paging
	if p == nil {
		return false
	}
	if name == p.Limit || name == p.Offset || name == p.Page {
		return true
	}
	_, ok := p.Next[name]
	return ok
}

// recipeCommand is "ghlflow recipe lint|put|list|remove".
func recipeCommand() *command {
	return &command{name: "recipe", summary: "check recipe files, and keep recipes in Redis", subs: append([]*command{
		{name: "lint", summary: "check recipes: operations, inputs and their values, templates, connections and scopes",
			args: "PATH...", details: "PATH is a recipe file or a folder of .yaml recipes. Errors stop 'ghlflow run' too; warnings do not.\n" +
				"With --connections and --redis lint sees every connection, and an unknown one is an error (as in run);\n" +
				"with only one of them it is a warning.",
			setup: func(fs *flag.FlagSet) runFunc {
				connFile := fs.String("connections", "", "static connections file: check each recipe's connections exist, are of the right app and hold the scopes its steps need")
				redisURL := fs.String("redis", "", "Redis URL of the connection store: check the stored connections too (env REDIS_URL is not read here)")
				prefix := fs.String("prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
				return func(ctx context.Context, args []string) int {
					if len(args) == 0 {
						fmt.Fprintln(os.Stderr, "ghlflow recipe lint: name recipe files or folders; 'ghlflow recipe lint --help' shows the flags")
						return 2
					}
					return lintRecipes(ctx, args, *connFile, *redisURL, *prefix)
				}
			}},
	}, recipeStoreCommands(os.Stdout, os.Stderr)...)}
}

func lintRecipes(ctx context.Context, paths []string, connFile, redisURL, prefix string) int {
	c, ok := loadCatalog()
	if !ok {
		return 1
	}
	var conns []auth.Connection
	if connFile != "" {
		// Lint reads the connections' metadata, not their secrets.
		static, err := auth.LoadStaticMetadata(connFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		conns = append(conns, static...)
	}
	if redisURL != "" {
		stored, err := storedConnections(ctx, redisURL, prefix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow recipe lint:", err)
			return 1
		}
		conns = append(conns, stored...)
	}
	loader := &catalog.RecipeLoader{Catalog: c, AllConnections: connFile != "" && redisURL != ""}
	if connFile != "" || redisURL != "" {
		loader.Connections = connectionApps(conns)
	}
	recipes, err := loader.Load(paths...)
	for _, w := range loader.Warnings {
		fmt.Fprintln(os.Stderr, w)
	}
	if err != nil {
		var es catalog.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(os.Stderr, e)
			}
			fmt.Fprintf(os.Stderr, "%d problem(s)\n", len(es))
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		return 1
	}
	for _, w := range auth.CheckScopes(c, recipes, conns) {
		fmt.Fprintln(os.Stderr, w)
	}
	if redisURL != "" {
		if err := tenantNotes(ctx, os.Stderr, c, recipes, redisURL, prefix); err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow recipe lint:", err)
			return 1
		}
	}
	for _, r := range recipes {
		fmt.Printf("ok  %s  %s (%s every %s, %d step(s))\n", r.File, r.Name, r.Trigger.Op, r.Trigger.Every, len(r.Steps))
	}
	return 0
}

// tenantNotes says, for each stored tenant, which recipes written for
// tenants it selects but does not run because it has no connection for one
// of their roles.
func tenantNotes(ctx context.Context, w io.Writer, c *catalog.Catalog, recipes []*catalog.Recipe, redisURL, prefix string) error {
	rdb, err := dialRedis(redisURL)
	if err != nil {
		return fmt.Errorf("--redis: %w", err)
	}
	defer rdb.Close()
	tenants, _, err := tenant.NewStore(rdb, prefix).List(ctx)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		for _, r := range recipes {
			if missing := t.MissingRoles(r); t.Selects(c, r) && len(missing) > 0 {
				fmt.Fprintf(w, "%s:%d: note: tenant %s does not run %s: no connection for role %s (ghlflow tenant add %s --connection %s=CONNECTION)\n",
					r.File, r.Line, t.ID, r.Name, strings.Join(missing, ", "), t.ID, missing[0])
			}
		}
	}
	return nil
}

// connectionApps maps connection ids to their app, as the recipe loader
// checks them.
func connectionApps(conns []auth.Connection) map[string]string {
	out := make(map[string]string, len(conns))
	for _, conn := range conns {
		out[conn.ID] = conn.App
	}
	return out
}

// storedConnections reads the connections of the store at redisURL, without
// their credentials (which lint never opens).
func storedConnections(ctx context.Context, redisURL, prefix string) ([]auth.Connection, error) {
	rdb, err := dialRedis(redisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	defer rdb.Close()
	return auth.ListConnections(ctx, rdb, prefix)
}

// schemaCommand is "ghlflow schema".
func schemaCommand() *command {
	return &command{name: "schema", summary: "print the JSON Schema of recipe files (for editors)", setup: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, args []string) int {
			if len(args) > 0 {
				fmt.Fprintf(os.Stderr, "ghlflow schema: unexpected argument %q\n", args[0])
				return 2
			}
			c, ok := loadCatalog()
			if !ok {
				return 1
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(c.RecipeSchema()); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		}
	}}
}

// suggest formats a did-you-mean hint for s among candidates, or "".
func suggest(s string, candidates []string) string {
	if c := catalog.Closest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func appIDs(c *catalog.Catalog) []string {
	var out []string
	for _, a := range c.Apps() {
		out = append(out, a.ID)
	}
	return out
}

// knownCategory reports whether f's category names one of the catalog's
// (of f's app, when given).
func knownCategory(c *catalog.Catalog, f catalog.Filter) bool {
	for _, a := range c.Apps() {
		if f.App != "" && a.ID != f.App {
			continue
		}
		for _, cat := range c.Categories(a.ID) {
			if strings.EqualFold(cat, f.Category) {
				return true
			}
		}
	}
	return false
}
