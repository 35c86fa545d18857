package catalog

import (
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed apps
var embedded embed.FS

// Default loads the catalog embedded in the binary.
func Default() (*Catalog, error) {
	sub, err := fs.Sub(embedded, "apps")
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return Load(sub)
}

// Load reads a catalog from fsys: one folder per app, each with an app.yaml
// describing the app and one YAML file per category of operations. It returns
// every problem found at once, as Errors.
func Load(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{apps: map[string]*App{}, ops: map[string]*Operation{}}
	var errs Errors
	dirs, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	firstSeen := map[string]*Operation{}
	for _, dir := range dirs {
		if !dir.IsDir() {
			continue
		}
		appFile := path.Join(dir.Name(), "app.yaml")
		app, appErrs := loadApp(fsys, appFile)
		errs = append(errs, appErrs...)
		if app == nil {
			continue
		}
		if app.ID != dir.Name() {
			errs = append(errs, &Error{File: appFile, Line: 1, Col: 1,
				Msg: fmt.Sprintf("app id %q differs from its folder %q", app.ID, dir.Name()),
				Fix: "name the folder after the app id"})
		}
		c.apps[app.ID] = app
		files, _ := fs.Glob(fsys, path.Join(dir.Name(), "*.yaml"))
		for _, file := range files {
			if file == appFile {
				continue
			}
			ops, opErrs := loadOps(fsys, file, app)
			errs = append(errs, opErrs...)
			for _, op := range ops {
				if prev := firstSeen[op.ID]; prev != nil {
					errs = append(errs, &Error{File: op.File, Line: op.Line, Col: 9,
						Msg: fmt.Sprintf("duplicate operation id %q", op.ID),
						Fix: fmt.Sprintf("it is first defined at %s:%d; give this one another id", prev.File, prev.Line)})
					continue
				}
				firstSeen[op.ID] = op
				c.ops[op.ID] = op
				c.order = append(c.order, op.ID)
			}
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func loadApp(fsys fs.FS, file string) (*App, Errors) {
	d := &decoder{file: file}
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		d.errorAt(nil, "every app folder needs an app.yaml", "cannot read app file: %v", err)
		return nil, d.errs
	}
	root := d.parse(data)
	if root == nil {
		return nil, d.errs
	}
	app := &App{File: file}
	d.decode(root, app)
	if app.ID == "" {
		d.errorAt(root, "add id: with the app's short name", "app has no id")
	}
	if u, err := url.Parse(app.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		d.errorAt(at(root, "base_url"), "write an absolute URL such as https://api.example.com", "base_url %q is not an absolute URL", app.BaseURL)
	}
	authKinds := []string{"oauth2", "private_integration", "bearer", "basic"}
	for i, a := range app.Auth {
		if !slices.Contains(authKinds, a.Kind) {
			d.errorAt(nodeIndex(field(root, "auth"), i), didYouMean(a.Kind, authKinds), "unknown auth kind %q", a.Kind)
		}
	}
	if app.RateLimit.Burst <= 0 || app.RateLimit.Interval <= 0 {
		d.errorAt(at(root, "rate_limit"), "set burst and interval, e.g. {burst: 100, interval: 10s}", "rate_limit needs a positive burst and interval")
	}
	return app, d.errs
}

// opFile is the shape of one category file.
type opFile struct {
	App        string      `yaml:"app"`
	Category   string      `yaml:"category"`
	Operations []Operation `yaml:"operations"`
}

func loadOps(fsys fs.FS, file string, app *App) ([]*Operation, Errors) {
	d := &decoder{file: file}
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		d.errorAt(nil, "", "cannot read: %v", err)
		return nil, d.errs
	}
	root := d.parse(data)
	if root == nil {
		return nil, d.errs
	}
	var f opFile
	d.decode(root, &f)
	if f.App != app.ID {
		d.errorAt(at(root, "app"), fmt.Sprintf("set app: %s, the app of this folder", app.ID), "app %q does not match the folder's app %q", f.App, app.ID)
	}
	if f.Category == "" {
		d.errorAt(root, "add category: with the category's display name", "file has no category")
	}
	opsNode := field(root, "operations")
	var out []*Operation
	for i := range f.Operations {
		op := &f.Operations[i]
		n := nodeIndex(opsNode, i)
		op.App, op.Category, op.File = app.ID, f.Category, file
		op.Line = at(n, "id").Line
		validateOp(d, app, op, n)
		out = append(out, op)
	}
	return out, d.errs
}

func nodeIndex(seq *yaml.Node, i int) *yaml.Node {
	if seq == nil || i >= len(seq.Content) {
		return seq
	}
	return seq.Content[i]
}

var (
	methods      = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	kinds        = []string{KindTrigger, KindAction}
	inputIns     = []string{InPath, InQuery, InBody, InHeader}
	pagingStyles = []string{PagingNone, PagingOffset, PagingPage, PagingCursor}
	dedups       = []string{DedupID, DedupUpdated, DedupCursor, DedupChanged}
	sinceFormats = []string{"epoch_ms", "rfc3339", "date", "search_filter"}
	tokenTypes   = []string{"location", "agency", "any"}
)

// validateOp checks one operation against the rules of the catalog.
func validateOp(d *decoder, app *App, op *Operation, n *yaml.Node) {
	validateOpHead(d, app, op, n)
	validateInputs(d, op, n)
	validateWebhooks(d, app, op, n)
	if op.Kind == KindAction {
		for _, key := range []string{"items", "object", "item_id", "item_created", "item_updated", "item_fields", "paging", "since", "dedup"} {
			if f := field(n, key); f != nil {
				d.errorAt(f, "remove it, or make the operation a trigger", "operation %s: %s is a trigger field but the operation is an action", op.ID, key)
			}
		}
		return
	}
	if op.Kind == KindTrigger {
		validateTrigger(d, op, n)
	}
}

// validateOpHead checks an operation's id, name, kind, method, path, scope,
// version and token type.
func validateOpHead(d *decoder, app *App, op *Operation, n *yaml.Node) {
	switch {
	case op.ID == "":
		d.errorAt(n, fmt.Sprintf("add id: %s.<area>.<verb>", app.ID), "operation has no id")
	case !strings.HasPrefix(op.ID, app.ID+"."):
		d.errorAt(at(n, "id"), fmt.Sprintf("start it with %q", app.ID+"."), "operation id %q does not start with its app", op.ID)
	}
	if op.Name == "" {
		d.errorAt(n, "add name: with the operation's display name", "operation %s has no name", op.ID)
	}
	if !slices.Contains(kinds, op.Kind) {
		d.errorAt(at(n, "kind"), "write trigger or action", "operation %s: kind %q is neither trigger nor action", op.ID, op.Kind)
	}
	if !slices.Contains(methods, op.Method) {
		d.errorAt(at(n, "method"), "one of "+strings.Join(methods, ", "), "operation %s: unknown method %q", op.ID, op.Method)
	}
	if !strings.HasPrefix(op.Path, "/") {
		d.errorAt(at(n, "path"), "write the path from the API reference, starting with /", "operation %s: path %q does not start with /", op.ID, op.Path)
	}
	if len(app.Scopes) > 0 && !slices.Contains(app.Scopes, op.Scope) {
		d.errorAt(at(n, "scope"), didYouMean(op.Scope, app.Scopes)+" or add the scope to "+app.File, "operation %s: scope %q is not one of app %s's scopes", op.ID, op.Scope, app.ID)
	}
	if app.VersionHeader != "" && op.Version == "" {
		d.errorAt(n, "add version: with the value the API's spec states, e.g. \"2021-07-28\"", "operation %s has no version (app %s sends a %s header)", op.ID, app.ID, app.VersionHeader)
	}
	if op.Token != "" && !slices.Contains(tokenTypes, op.Token) {
		d.errorAt(at(n, "token"), "one of "+strings.Join(tokenTypes, ", "), "operation %s: unknown token type %q", op.ID, op.Token)
	}
}

// validateInputs checks an operation's inputs, and that every path
// parameter is one.
func validateInputs(d *decoder, op *Operation, n *yaml.Node) {
	inputsNode := field(n, "inputs")
	seen := map[string]bool{}
	for i, in := range op.Inputs {
		in_ := nodeIndex(inputsNode, i)
		if in.Name == "" {
			d.errorAt(in_, "add name:", "operation %s: input without a name", op.ID)
		}
		if seen[in.Name] {
			d.errorAt(at(in_, "name"), "remove one of them", "operation %s: input %q is declared twice", op.ID, in.Name)
		}
		seen[in.Name] = true
		if !slices.Contains(inputTypes, in.Type) {
			d.errorAt(at(in_, "type"), didYouMean(in.Type, inputTypes), "operation %s: input %s has unknown type %q", op.ID, in.Name, in.Type)
		}
		if !slices.Contains(inputIns, in.In) {
			d.errorAt(at(in_, "in"), "one of "+strings.Join(inputIns, ", "), "operation %s: input %s has unknown location in: %q", op.ID, in.Name, in.In)
		}
		if in.In == InPath && !in.Required {
			d.errorAt(at(in_, "required"), "set required: true", "operation %s: path input %s must be required", op.ID, in.Name)
		}
		if in.In == InPath && !slices.Contains(op.PathParams(), in.Name) {
			d.errorAt(at(in_, "name"), fmt.Sprintf("add {%s} to the path or move the input to query or body", in.Name), "operation %s: path input %s is not in the path %s", op.ID, in.Name, op.Path)
		}
	}
	for _, p := range op.PathParams() {
		if in := op.Input(p); in == nil || in.In != InPath {
			d.errorAt(at(n, "path"), fmt.Sprintf("declare it: inputs: [{name: %s, type: string, in: path, required: true}]", p), "operation %s: path parameter {%s} is not declared as a path input", op.ID, p)
		}
	}
}

// validateTrigger checks a trigger's items, dedup strategy, paging and
// since.
func validateTrigger(d *decoder, op *Operation, n *yaml.Node) {
	if field(n, "items") == nil {
		d.errorAt(n, `set items: to the gjson path of the item list, or items: "" when the response is one object`, "trigger %s has no items path", op.ID)
	}
	if op.Items != "" && field(n, "object") != nil {
		d.errorAt(at(n, "object"), "object is for one-object triggers; remove it or set items: \"\"", "trigger %s has both items and object", op.ID)
	}
	if op.Dedup == "" {
		d.errorAt(n, "add dedup: id, updated, cursor or changed", "trigger %s has no default dedup strategy", op.ID)
	} else if !slices.Contains(dedups, op.Dedup) {
		d.errorAt(at(n, "dedup"), didYouMean(op.Dedup, dedups), "trigger %s: unknown dedup strategy %q", op.ID, op.Dedup)
	}
	switch op.Dedup {
	case DedupID:
		if op.ItemID == "" {
			d.errorAt(at(n, "dedup"), "set item_id:, or use dedup: changed", "trigger %s: dedup id needs item_id", op.ID)
		}
	case DedupUpdated:
		if op.ItemID == "" || op.ItemUpdated == "" {
			d.errorAt(at(n, "dedup"), "set item_id: and item_updated:, or choose another strategy", "trigger %s: dedup updated needs item_id and item_updated", op.ID)
		}
	case DedupCursor:
		if op.ItemID == "" || (op.ItemCreated == "" && op.ItemUpdated == "") {
			d.errorAt(at(n, "dedup"), "set item_id: and item_created: or item_updated:", "trigger %s: dedup cursor needs an id and a time field", op.ID)
		}
	}
	if op.Paging == nil {
		d.errorAt(n, "add paging: {style: none} when the list is not paged", "trigger %s has no paging", op.ID)
	} else {
		validatePaging(d, op, at(n, "paging"))
	}
	if op.Since != nil {
		sn := at(n, "since")
		if in := op.Input(op.Since.Input); in == nil {
			d.errorAt(at(sn, "input"), "name one of the operation's inputs", "trigger %s: since input %q is not an input", op.ID, op.Since.Input)
		}
		if !slices.Contains(sinceFormats, op.Since.Format) {
			d.errorAt(at(sn, "format"), "one of "+strings.Join(sinceFormats, ", "), "trigger %s: unknown since format %q", op.ID, op.Since.Format)
		}
	}
}

func validatePaging(d *decoder, op *Operation, n *yaml.Node) {
	p := op.Paging
	if !slices.Contains(pagingStyles, p.Style) {
		d.errorAt(at(n, "style"), didYouMean(p.Style, pagingStyles), "trigger %s: unknown paging style %q", op.ID, p.Style)
		return
	}
	if p.In != "" && p.In != InQuery && p.In != InBody {
		d.errorAt(at(n, "in"), "write query or body", "trigger %s: paging in %q", op.ID, p.In)
	}
	need := func(ok bool, key string) {
		if !ok {
			d.errorAt(n, fmt.Sprintf("add %s: naming the parameter", key), "trigger %s: %s paging needs %s", op.ID, p.Style, key)
		}
	}
	switch p.Style {
	case PagingOffset:
		need(p.Limit != "", "limit")
		need(p.Offset != "", "offset")
	case PagingPage:
		need(p.Page != "", "page")
	case PagingCursor:
		need(len(p.Next) > 0, "next")
	}
	for _, param := range []string{p.Limit, p.Offset, p.Page} {
		if param != "" && op.Input(param) == nil {
			d.errorAt(n, fmt.Sprintf("declare %s under inputs", param), "trigger %s: paging parameter %q is not an input", op.ID, param)
		}
	}
	for param := range p.Next {
		if op.Input(param) == nil {
			d.errorAt(at(n, "next"), fmt.Sprintf("declare %s under inputs", param), "trigger %s: paging parameter %q is not an input", op.ID, param)
		}
	}
}
