package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/auth"
)

func loadCatalog() (*catalog.Catalog, bool) {
	c, err := catalog.Default()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ghlflow: the embedded catalog does not load:\n%v\n", err)
		return nil, false
	}
	return c, true
}

// runCatalog implements "ghlflow catalog list|show".
func runCatalog(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ghlflow catalog list [--app A] [--category C] [--kind K] [--format table|json]\n       ghlflow catalog show OP")
		return 2
	}
	c, ok := loadCatalog()
	if !ok {
		return 1
	}
	switch args[0] {
	case "list":
		return catalogList(os.Stdout, c, args[1:])
	case "show":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: ghlflow catalog show OP")
			return 2
		}
		return catalogShow(os.Stdout, c, args[1])
	}
	fmt.Fprintf(os.Stderr, "ghlflow catalog: unknown subcommand %q (list or show)\n", args[0])
	return 2
}

func catalogList(w io.Writer, c *catalog.Catalog, args []string) int {
	fs := flag.NewFlagSet("catalog list", flag.ContinueOnError)
	var f catalog.Filter
	fs.StringVar(&f.App, "app", "", "only this app (ghl, referralrock, referrizer)")
	fs.StringVar(&f.Category, "category", "", "only this category, e.g. Contacts")
	fs.StringVar(&f.Kind, "kind", "", "only trigger or action")
	format := fs.String("format", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if f.Kind != "" && f.Kind != catalog.KindTrigger && f.Kind != catalog.KindAction {
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: --kind %q: write trigger or action\n", f.Kind)
		return 2
	}
	if f.App != "" && c.App(f.App) == nil {
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: unknown app %q\n", f.App)
		return 2
	}
	ops := c.Find(f)
	switch *format {
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
		fmt.Fprintf(os.Stderr, "ghlflow catalog list: --format %q: write table or json\n", *format)
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

// runRecipe implements "ghlflow recipe lint PATH...".
func runRecipe(ctx context.Context, args []string) int {
	const usage = "usage: ghlflow recipe lint [--connections FILE] [--redis URL [--prefix P]] PATH...   (files or folders of .yaml recipes)\n" +
		"       ghlflow recipe put FILE... | list | remove NAME  [--redis URL] [--prefix P]"
	if len(args) >= 1 && (args[0] == "put" || args[0] == "list" || args[0] == "remove") {
		return runRecipeStore(ctx, args, os.Stdout, os.Stderr)
	}
	if len(args) < 1 || args[0] != "lint" {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("recipe lint", flag.ContinueOnError)
	connFile := fs.String("connections", "", "static connections file: check each recipe's connections exist, are of the right app and hold the scopes its steps need")
	redisURL := fs.String("redis", "", "Redis URL of the connection store: check the stored connections' scopes too")
	prefix := fs.String("prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	c, ok := loadCatalog()
	if !ok {
		return 1
	}
	var conns []auth.Connection
	if *connFile != "" {
		st, err := auth.LoadStaticConnections(*connFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		conns = append(conns, st.List()...)
	}
	if *redisURL != "" {
		stored, err := storedConnections(ctx, *redisURL, *prefix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ghlflow recipe lint:", err)
			return 1
		}
		conns = append(conns, stored...)
	}
	loader := &catalog.RecipeLoader{Catalog: c}
	if len(conns) > 0 {
		loader.Connections = map[string]string{}
		for _, conn := range conns {
			loader.Connections[conn.ID] = conn.App
		}
	}
	recipes, err := loader.Load(fs.Args()...)
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
	for _, r := range recipes {
		fmt.Printf("ok  %s  %s (%s every %s, %d step(s))\n", r.File, r.Name, r.Trigger.Op, r.Trigger.Every, len(r.Steps))
	}
	return 0
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

// runSchema implements "ghlflow schema".
func runSchema(ctx context.Context, args []string) int {
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
