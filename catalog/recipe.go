package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits of a trigger's polling interval.
const (
	MinEvery = time.Minute
	MaxEvery = 15 * time.Minute
)

// Recipe is a user's automation: a trigger polled every interval, an
// optional filter, and a chain of action steps.
type Recipe struct {
	Name        string
	Description string
	File        string
	Line        int
	Trigger     RecipeTrigger
	// Filter renders to "true" for items that should run the steps; nil
	// lets every item through.
	Filter *Value
	Steps  []Step
	// Roles are the connection roles the recipe declares beyond the app
	// ids (role → app), for a recipe that needs two connections of one app.
	Roles map[string]string
	// Tenants selects the tenants the recipe applies to by their labels
	// (all must match); nil selects every tenant that has the roles it uses.
	Tenants map[string]string
	// UsesConnection is true when a template refers to .connection (the
	// engine then looks the connection up before rendering).
	UsesConnection bool
}

// Uses returns the connection roles the recipe uses, trigger first, each
// once.
func (r *Recipe) Uses() []string {
	out := []string{r.Trigger.Connection}
	for i := range r.Steps {
		if c := r.Steps[i].Connection; c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// IsRole reports whether name is a role a tenant fills (an app id or a role
// the recipe declares) rather than the id of one connection.
func (l *RecipeLoader) IsRole(r *Recipe, name string) bool {
	if _, ok := r.Roles[name]; ok {
		return true
	}
	return l.Catalog != nil && l.Catalog.App(name) != nil
}

// ForTenants reports whether the recipe is written for tenants: it names
// roles (app ids or declared roles) or selects tenants by label. Other
// recipes name connection ids and run for the built-in default tenant.
func (r *Recipe) ForTenants(c *Catalog) bool {
	if r.Tenants != nil {
		return true
	}
	l := &RecipeLoader{Catalog: c}
	for _, u := range r.Uses() {
		if l.IsRole(r, u) {
			return true
		}
	}
	return false
}

// RecipeTrigger is the polled side of a recipe.
type RecipeTrigger struct {
	Op         string
	Connection string
	Every      Duration
	// Params are the operation's inputs, compiled (they may use now and the
	// other template functions, but not .trigger or .steps).
	Params map[string]*Value
	// Dedup is the strategy in force: the recipe's choice or the op's default.
	Dedup string
	// Backfill is how many existing items the first poll fires (newest N);
	// 0 seeds silently.
	Backfill int
	// MaxPages caps the pages one poll reads; 0 means the engine's default.
	MaxPages int
	// Instant fires the recipe on the webhook events of its operation as
	// they arrive; its polls go on at Every as the safety net.
	Instant bool
}

// Step is one action of a recipe's chain.
type Step struct {
	Name       string
	Op         string
	Connection string
	Input      map[string]*Value
	Line       int
	// When, if set, renders to "true" for the step to run; otherwise the
	// step is skipped and its output is empty ({}) for later steps, so
	// "find, then create or update" needs no code.
	When *Value
}

// RecipeLoader loads and validates recipes against a catalog.
type RecipeLoader struct {
	Catalog *Catalog
	// Connections maps known connection names to their app id. When set,
	// a recipe naming a connection of the wrong app is an error, and one
	// naming an unknown connection is an error when AllConnections is set
	// and a warning otherwise; when nil only the recipe's own consistency
	// is checked.
	Connections map[string]string
	// AllConnections says Connections holds every connection there is (the
	// connections file and the store), as when the engine starts.
	AllConnections bool
	// Warnings collects the warnings of the recipes loaded: likely mistakes
	// that do not stop a recipe from loading.
	Warnings Errors
}

// LoadRecipes reads recipe files (or every .yaml/.yml file in folders) and
// validates them against c. It returns every problem at once, as Errors.
func LoadRecipes(c *Catalog, paths ...string) ([]*Recipe, error) {
	return (&RecipeLoader{Catalog: c}).Load(paths...)
}

// Load reads and validates recipe files or folders of them.
func (l *RecipeLoader) Load(paths ...string) ([]*Recipe, error) {
	var files []string
	var errs Errors
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: "cannot read: " + strings.TrimPrefix(err.Error(), "stat "+p+": "), Fix: "check the path"})
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(p, pat))
			files = append(files, m...)
		}
	}
	sort.Strings(files)
	var out []*Recipe
	names := map[string]*Recipe{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Msg: "cannot read: " + err.Error()})
			continue
		}
		r, err := l.Parse(f, data)
		if err != nil {
			errs = append(errs, err.(Errors)...)
			continue
		}
		if prev := names[r.Name]; prev != nil {
			errs = append(errs, &Error{File: f, Line: r.Line, Col: 7, Msg: fmt.Sprintf("recipe name %q is already used by %s", r.Name, prev.File),
				Fix: "recipe names identify subscriptions; give each recipe its own"})
			continue
		}
		names[r.Name] = r
		out = append(out, r)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// recipeFile is the YAML shape of a recipe. The loader decodes into it and
// RecipeSchema is generated from it: field names from the yaml tags,
// descriptions from doc, required fields from required, lower bounds from
// minimum, so the two describe recipes once.
type recipeFile struct {
	Name        string `yaml:"name" required:"true" doc:"lower-case id; names the subscription (keep it stable)"`
	Description string `yaml:"description" doc:"what the recipe does, for people"`
	Trigger     struct {
		Op         string         `yaml:"op" required:"true" doc:"a trigger operation id ('ghlflow catalog list --kind trigger')"`
		Connection string         `yaml:"connection" doc:"the connection to poll with, or a role a tenant fills (default: the app id, the tenant's connection of the app)"`
		Every      Duration       `yaml:"every" required:"true" doc:"polling interval, 1m to 15m, e.g. 5m or 1m30s"`
		Params     map[string]any `yaml:"params" doc:"inputs of the operation; paging inputs are filled by the poll"`
		Dedup      string         `yaml:"dedup" doc:"how new items are told apart: id, updated, cursor or changed (default: the operation's)"`
		Backfill   int            `yaml:"backfill" minimum:"0" doc:"existing items the first poll fires, newest first (0 = none)"`
		MaxPages   int            `yaml:"max_pages" minimum:"0" doc:"pages one poll may read (0 = the engine's default)"`
		Instant    bool           `yaml:"instant" doc:"also fire on the operation's webhook events as they arrive (its polls go on as the safety net)"`
	} `yaml:"trigger" required:"true" doc:"the operation polled for new or changed items"`
	Filter  string            `yaml:"filter" doc:"a template that renders true for the items to act on"`
	Roles   map[string]string `yaml:"roles" doc:"connection roles beyond the app ids (role: app), for a recipe that needs two connections of one app"`
	Tenants map[string]string `yaml:"tenants" doc:"the labels (all must match) of the tenants the recipe runs for"`
	Steps   []struct {
		Name       string         `yaml:"name" doc:"a name for the step, for people"`
		Op         string         `yaml:"op" required:"true" doc:"an action operation id ('ghlflow catalog list --kind action')"`
		Connection string         `yaml:"connection" doc:"the connection to call with (default: the trigger's, for the same app)"`
		When       string         `yaml:"when" doc:"a template; the step runs when it renders true, otherwise it is skipped and its output is empty"`
		Input      map[string]any `yaml:"input" doc:"inputs of the operation; text may use templates over .trigger, .steps.N, .recipe, .tenant, .connection"`
	} `yaml:"steps" required:"true" minimum:"1" doc:"the actions run for each new item, in order"`
}

var recipeNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Parse reads and validates one recipe file's content. Its error, if any,
// is Errors.
func (l *RecipeLoader) Parse(file string, data []byte) (*Recipe, error) {
	d := &decoder{file: file}
	defer func() { l.Warnings = append(l.Warnings, d.warns...) }()
	root := d.parse(data)
	if root == nil {
		return nil, d.errs.Err()
	}
	var f recipeFile
	d.decode(root, &f)
	r := &Recipe{Name: f.Name, Description: f.Description, File: file, Line: at(root, "name").Line,
		Roles: f.Roles, Tenants: f.Tenants, UsesConnection: usesConnection(data)}
	l.checkRoles(d, field(root, "roles"), f.Roles)
	switch {
	case f.Name == "":
		d.errorAt(root, "add name: with a short id such as new-contact-welcome", "recipe has no name")
	case !recipeNameRe.MatchString(f.Name):
		d.errorAt(at(root, "name"), "use lower-case letters, digits, - and _", "recipe name %q is not a valid id", f.Name)
	}
	tn := field(root, "trigger")
	if tn == nil {
		d.errorAt(root, "add trigger: with op, connection and every", "recipe has no trigger")
		return nil, d.errs.Err()
	}
	p := &recipeParse{l: l, d: d, f: &f, connApps: map[string]string{}}
	top := p.trigger(tn, &r.Trigger)
	p.filter(root, r, top)
	p.steps(root, r, top)
	if err := d.errs.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// recipeParse is what one Parse call reads a recipe's parts with: the
// decoder that collects the problems, the decoded file, and the app each
// connection named in the recipe is used for.
type recipeParse struct {
	l        *RecipeLoader
	d        *decoder
	f        *recipeFile
	connApps map[string]string // connection → app, as used in this recipe
}

// trigger reads the trigger at tn into t and returns its operation (nil
// when it is not one).
func (p *recipeParse) trigger(tn *yaml.Node, t *RecipeTrigger) *Operation {
	d, f := p.d, p.f
	t.Op, t.Connection, t.Every, t.Backfill, t.MaxPages = f.Trigger.Op, f.Trigger.Connection, f.Trigger.Every, f.Trigger.Backfill, f.Trigger.MaxPages
	top := p.l.lookupOp(d, at(tn, "op"), f.Trigger.Op, KindTrigger, "trigger")
	if f.Trigger.Connection == "" && top != nil {
		// A role defaults to the app id: the tenant's connection of the app.
		t.Connection, f.Trigger.Connection = top.App, top.App
	}
	p.useConn(at(tn, "connection"), f.Trigger.Connection, top)
	switch {
	case field(tn, "every") == nil:
		d.errorAt(tn, "add every: between 1m and 15m, e.g. every: 5m", "trigger has no interval")
	case !validDuration(field(tn, "every")):
		// the decoder has reported it
	case t.Every.Std() < MinEvery || t.Every.Std() > MaxEvery:
		d.errorAt(at(tn, "every"), "write a value from 1m to 15m", "interval %s is out of range", t.Every)
	}
	if t.Backfill < 0 {
		d.errorAt(at(tn, "backfill"), "write 0 (fire nothing on the first poll) or the number of existing items to fire", "backfill %d is negative", t.Backfill)
	}
	if t.MaxPages < 0 {
		d.errorAt(at(tn, "max_pages"), "write 0 for the default or a positive cap", "max_pages %d is negative", t.MaxPages)
	}
	t.Instant = f.Trigger.Instant
	if top != nil {
		t.Dedup = top.Dedup
		if f.Trigger.Dedup != "" {
			t.Dedup = f.Trigger.Dedup
			checkDedup(d, at(tn, "dedup"), top, f.Trigger.Dedup)
		}
		if t.Instant {
			validateInstant(d, p.l.Catalog, tn, top, t.Dedup)
		}
		t.Params = p.l.compileInputs(d, field(tn, "params"), tn, top, nil, f.Trigger.Params, -1, len(f.Steps), "params")
	}
	return top
}

// filter compiles the recipe's filter, if it has one, into r.Filter.
func (p *recipeParse) filter(root *yaml.Node, r *Recipe, top *Operation) {
	d, text := p.d, p.f.Filter
	if text == "" {
		return
	}
	v, err := CompileValue("filter", text)
	switch {
	case err != nil:
		d.errorAt(at(root, "filter"), "fix the template syntax, e.g. '{{ ne .trigger.email \"\" }}'", "filter: %v", err)
	case len(v.StepRefs()) > 0:
		d.errorAt(at(root, "filter"), "the filter runs before any step; test .trigger fields only", "filter refers to .steps")
	default:
		checkRefs(d, at(root, "filter"), "filter", v, top)
		r.Filter = v
	}
}

// steps reads the recipe's steps into r.Steps.
func (p *recipeParse) steps(root *yaml.Node, r *Recipe, top *Operation) {
	d, f := p.d, p.f
	sn := field(root, "steps")
	if len(f.Steps) == 0 {
		d.errorAt(at(root, "steps"), "add steps: with at least one action", "recipe has no steps")
	}
	for i, s := range f.Steps {
		n := nodeIndex(sn, i)
		step := Step{Name: s.Name, Op: s.Op, Connection: s.Connection, Line: n.Line}
		op := p.l.lookupOp(d, at(n, "op"), s.Op, KindAction, fmt.Sprintf("step %d", i))
		if op != nil && step.Connection == "" {
			if top == nil || top.App == op.App {
				step.Connection = f.Trigger.Connection
			} else {
				step.Connection = op.App // the tenant's connection of the app
			}
		}
		p.useConn(at(n, "connection"), s.Connection, op)
		if op != nil {
			step.Input = p.l.compileInputs(d, field(n, "input"), n, op, top, s.Input, i, len(f.Steps), "input")
		}
		if s.When != "" {
			step.When = compileWhen(d, at(n, "when"), s.When, i)
		}
		r.Steps = append(r.Steps, step)
	}
}

// useConn checks that connection conn, named at n, fits op: a role of op's
// app, or a known connection of that app, used for one app only in the
// recipe.
func (p *recipeParse) useConn(n *yaml.Node, conn string, op *Operation) {
	if conn == "" || op == nil {
		return
	}
	d := p.d
	if app, ok := p.f.Roles[conn]; ok || p.l.Catalog.App(conn) != nil {
		if !ok {
			app = conn
		}
		if app != op.App {
			d.errorAt(n, fmt.Sprintf("use the %s role or declare one under roles:", op.App), "role %q is a %s connection but %s is a %s operation", conn, app, op.ID, op.App)
		}
		return
	}
	if p.l.Connections != nil {
		app, ok := p.l.Connections[conn]
		if !ok {
			p.unknownConn(n, conn)
			return
		}
		if app != op.App {
			d.errorAt(n, fmt.Sprintf("use a %s connection", op.App), "connection %q is a %s connection but %s is a %s operation", conn, app, op.ID, op.App)
			return
		}
	}
	if prev, ok := p.connApps[conn]; ok && prev != op.App {
		d.errorAt(n, "use one connection per app", "connection %q is used for both %s and %s operations", conn, prev, op.App)
	}
	p.connApps[conn] = op.App
}

// unknownConn reports connection conn, named at n, that the loader's
// connections lack: an error when they are all there are, a warning
// otherwise, with the nearest known names.
func (p *recipeParse) unknownConn(n *yaml.Node, conn string) {
	names := make([]string, 0, len(p.l.Connections))
	for k := range p.l.Connections {
		names = append(names, k)
	}
	sort.Strings(names)
	fix := "add it with 'ghlflow connect' or to the connections file"
	if len(names) > 0 {
		if s := didYouMean(conn, names); strings.HasPrefix(s, "did you") {
			fix = s
		} else if s != "" {
			fix += "; known: " + strings.TrimPrefix(s, "one of: ")
		}
	}
	if p.l.AllConnections {
		p.d.errorAt(n, fix, "unknown connection %q", conn)
	} else {
		p.d.warnAt(n, fix, "unknown connection %q", conn)
	}
}

// compileWhen compiles step i's when: template; it may use .trigger and
// the steps before step i.
func compileWhen(d *decoder, n *yaml.Node, src string, i int) *Value {
	v, err := CompileValue("when", src)
	if err != nil {
		d.errorAt(n, "fix the template syntax, e.g. '{{ not .steps.0.id }}'", "when: %v", err)
		return nil
	}
	if !v.IsTemplate() {
		d.errorAt(n, "write a template that renders true or false, e.g. '{{ .steps.0.id }}'", "when: %q is not a template", src)
		return nil
	}
	for _, ref := range v.StepRefs() {
		if ref >= i {
			fix := "step 0 runs first; test .trigger fields"
			if i > 0 {
				fix = fmt.Sprintf("a step's when can use only the steps before it (0 to %d)", i-1)
			}
			d.errorAt(n, fix, "when refers to step %d, which has not run yet at step %d", ref, i)
		}
	}
	return v
}

// checkRoles checks a recipe's declared roles: each names a catalog app and
// is not itself an app id.
func (l *RecipeLoader) checkRoles(d *decoder, n *yaml.Node, roles map[string]string) {
	names := make([]string, 0, len(roles))
	for k := range roles {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, role := range names {
		app := roles[role]
		switch {
		case !recipeNameRe.MatchString(role):
			d.errorAt(keyNode(n, role), "use lower-case letters, digits, - and _", "role %q is not a valid id", role)
		case l.Catalog.App(role) != nil:
			d.errorAt(keyNode(n, role), "an app id is a role already; declare only other names", "role %q is an app id", role)
		case l.Catalog.App(app) == nil:
			d.errorAt(at(n, role), "write an app id: ghl, referralrock, referrizer", "role %q: unknown app %q", role, app)
		}
	}
}

// connectionRefRe finds template references to .connection.
var connectionRefRe = regexp.MustCompile(`\{\{[^}]*\.connection\b`)

// usesConnection reports whether a recipe's text refers to .connection in
// a template.
func usesConnection(data []byte) bool { return connectionRefRe.Match(data) }

// lookupOp finds an operation by id and checks its kind.
func (l *RecipeLoader) lookupOp(d *decoder, n *yaml.Node, id, kind, where string) *Operation {
	if id == "" {
		d.errorAt(n, "add op: with an operation id; 'ghlflow catalog list' shows them", "%s has no op", where)
		return nil
	}
	op := l.Catalog.Op(id)
	if op == nil {
		fix := "'ghlflow catalog list' shows the operation ids"
		if s := l.Catalog.Suggest(id); s != "" {
			fix = fmt.Sprintf("did you mean %q?", s)
		}
		d.errorAt(n, fix, "%s: unknown operation %q", where, id)
		return nil
	}
	if op.Kind != kind {
		fix := "use a trigger operation here; 'ghlflow catalog list --kind trigger' shows them"
		if kind == KindAction {
			fix = "use an action operation here; 'ghlflow catalog list --kind action' shows them"
		}
		d.errorAt(n, fix, "%s: %s is %s %s, not %s %s", where, id, article(op.Kind), op.Kind, article(kind), kind)
		return nil
	}
	return op
}

func article(kind string) string {
	if kind == KindAction {
		return "an"
	}
	return "a"
}

func checkDedup(d *decoder, n *yaml.Node, op *Operation, dedup string) {
	switch dedup {
	case DedupID:
		if op.ItemID == "" {
			d.errorAt(n, "use dedup: changed", "%s items have no id, so dedup id cannot work", op.ID)
		}
	case DedupUpdated:
		if op.ItemUpdated == "" || op.ItemID == "" {
			d.errorAt(n, "use dedup: id or changed", "%s items have no update time, so dedup updated cannot work", op.ID)
		}
	case DedupCursor:
		if op.ItemCreated == "" && op.ItemUpdated == "" {
			d.errorAt(n, "use dedup: id or changed", "%s items have no time field, so dedup cursor cannot work", op.ID)
		}
	case DedupChanged:
	default:
		d.errorAt(n, didYouMean(dedup, dedups), "unknown dedup strategy %q", dedup)
	}
}

// pagingInputs are the inputs a call fills itself: page size, offset, page,
// cursors, the since filter, and a GHL operation's locationId (from the
// connection).
func pagingInputs(op *Operation) []string {
	var out []string
	if p := op.Paging; p != nil {
		for _, s := range []string{p.Limit, p.Offset, p.Page} {
			if s != "" {
				out = append(out, s)
			}
		}
		for k := range p.Next {
			out = append(out, k)
		}
	}
	if op.Since != nil {
		out = append(out, op.Since.Input)
	}
	if op.App == "ghl" {
		out = append(out, ConnectionLocationInputs...)
	}
	return out
}

// ConnectionLocationInput is the GHL input a call fills from its
// connection's location when a recipe leaves it out.
const ConnectionLocationInput = "locationId"

// ConnectionLocationInputs are the names under which an operation takes
// the location (in its path, query or body); a call fills the one the
// operation has from its connection when the recipe leaves it out.
var ConnectionLocationInputs = []string{ConnectionLocationInput, "location_id"}

// compileInputs checks a params/input mapping against op's inputs and
// compiles its values. step is the index of the step (-1 for the trigger);
// trigger is the recipe's trigger operation (nil for the params).
func (l *RecipeLoader) compileInputs(d *decoder, n, parent *yaml.Node, op, trigger *Operation, in map[string]any, step, nsteps int, key string) map[string]*Value {
	out := map[string]*Value{}
	names := make([]string, len(op.Inputs))
	for i, x := range op.Inputs {
		names[i] = x.Name
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kn := keyNode(n, k)
		if op.Input(k) == nil {
			fix := didYouMean(k, names)
			if fix == "" {
				fix = "'ghlflow catalog show " + op.ID + "' lists its inputs"
			}
			d.errorAt(kn, fix, "%s has no input %q", op.ID, k)
			continue
		}
		v, err := CompileValue(k, in[k])
		if err != nil {
			d.errorAt(at(n, k), "fix the template syntax: {{ .trigger.field }}, {{ .steps.0.field }}", "%s: %v", k, err)
			continue
		}
		for _, ref := range v.StepRefs() {
			switch {
			case step < 0:
				d.errorAt(at(n, k), "trigger params cannot use step outputs", "%s refers to step %d", k, ref)
			case ref >= nsteps:
				d.errorAt(at(n, k), fmt.Sprintf("the recipe has steps 0 to %d", nsteps-1), "%s refers to step %d, and there is no step %d", k, ref, ref)
			case ref >= step && step == 0:
				d.errorAt(at(n, k), "step 0 runs first; use .trigger fields", "%s refers to step %d, which has not run yet at step 0", k, ref)
			case ref >= step:
				d.errorAt(at(n, k), fmt.Sprintf("a step can use only the steps before it (0 to %d)", step-1), "%s refers to step %d, which has not run yet at step %d", k, ref, step)
			}
		}
		if step < 0 && strings.Contains(fmt.Sprint(in[k]), ".trigger") {
			d.errorAt(at(n, k), "params are rendered before the poll; .trigger exists only in steps and the filter", "%s refers to .trigger", k)
		} else {
			checkRefs(d, at(n, k), k, v, trigger)
		}
		checkLiteral(d, at(n, k), op, op.Input(k), in[k])
		out[k] = v
	}
	auto := pagingInputs(op)
	for _, x := range op.Inputs {
		if !x.Required || slices.Contains(auto, x.Name) {
			continue
		}
		if _, ok := in[x.Name]; !ok {
			where := parent
			if n != nil {
				where = n
			}
			d.errorAt(where, fmt.Sprintf("add %s: under %s", x.Name, key), "%s needs input %q", op.ID, x.Name)
		}
	}
	return out
}

// keyNode returns the key node of key in mapping n (for errors about the key
// itself), or n.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
	}
	return n
}

func validDuration(n *yaml.Node) bool {
	_, err := time.ParseDuration(n.Value)
	return err == nil
}
