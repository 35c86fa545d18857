// Package catalog holds ghlflow's declarative registry: the apps it talks to
// (HighLevel, Referral Rock, Referrizer), every operation it can poll or
// perform, and the recipes users write over them. Everything here is data read
// from YAML files; the package knows nothing of the engine that runs it.
package catalog

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Kinds of operation.
const (
	KindTrigger = "trigger" // polled for new or changed items
	KindAction  = "action"  // performed by a recipe step
)

// Paging styles a trigger may declare.
const (
	PagingNone   = "none"   // one request returns everything there is
	PagingOffset = "offset" // a limit and an item offset (GHL's limit/skip and limit/offset families)
	PagingPage   = "page"   // a limit and a page number
	PagingCursor = "cursor" // values read from the response are sent back for the next page
)

// Dedup strategies: how a trigger decides which polled items are new.
const (
	DedupID      = "id"      // an item fires once, the first time its id is seen
	DedupUpdated = "updated" // an item fires on each new update time (key = id + update time)
	DedupCursor  = "cursor"  // a high-water mark on a time field; the API is asked only for newer items where it can filter
	DedupChanged = "changed" // a one-object trigger fires when the object changes (update time, else a content hash)
)

// Input locations.
const (
	InPath   = "path"
	InQuery  = "query"
	InBody   = "body"
	InHeader = "header"
)

// Value types an input may declare.
var inputTypes = []string{"string", "number", "integer", "boolean", "array", "object", "datetime", "date", "any"}

// Catalog is the loaded registry of apps and operations. It is built once at
// start and only read afterwards, so it is safe for concurrent use.
type Catalog struct {
	apps  map[string]*App
	ops   map[string]*Operation
	order []string // operation ids in file order
}

// App is one API ghlflow can call.
type App struct {
	ID          string    `yaml:"id"`
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	BaseURL     string    `yaml:"base_url"`
	Auth        []Auth    `yaml:"auth"`
	RateLimit   RateLimit `yaml:"rate_limit"`
	// VersionHeader names the header that carries an operation's API version
	// ("Version" for HighLevel); empty when the app has none.
	VersionHeader string `yaml:"version_header"`
	// Scopes lists every OAuth scope the app knows; an operation's scope must
	// be one of them. Empty for apps without scopes.
	Scopes []string `yaml:"scopes"`
	// WebhookEvents lists the event types the app sends to webhooks; a
	// trigger's webhooks name some of them.
	WebhookEvents []string `yaml:"webhook_events"`
	// Source says where the facts of this file come from.
	Source string `yaml:"source"`

	File string `yaml:"-"` // the file it was loaded from
}

// Auth is one way to authenticate with an app.
type Auth struct {
	// Kind is oauth2, private_integration, bearer or basic.
	Kind string `yaml:"kind"`
	// TokenTypes lists who an OAuth token may stand for: location, agency.
	TokenTypes []string `yaml:"token_types,omitempty"`
	// AuthorizeURL is where a user approves an OAuth install.
	AuthorizeURL string `yaml:"authorize_url,omitempty"`
	// TokenPath is the token endpoint, relative to the app's base URL.
	TokenPath string `yaml:"token_path,omitempty"`
	// LocationTokenPath exchanges an agency token for a location token.
	LocationTokenPath string `yaml:"location_token_path,omitempty"`
	// Description tells a user what credential to paste.
	Description string `yaml:"description,omitempty"`
}

// RateLimit is an app's documented request budget.
type RateLimit struct {
	Burst    int      `yaml:"burst"`    // requests per Interval
	Interval Duration `yaml:"interval"` // the burst window
	Daily    int      `yaml:"daily"`    // requests per day, 0 = none documented
	Per      string   `yaml:"per"`      // what the budget is counted per: location, account
}

// Duration is a time.Duration written as "10s" or "5m" in YAML.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration, without a trailing "0s" ("5m", not
// "5m0s").
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Operation is one API call: a trigger to poll or an action to perform.
type Operation struct {
	ID          string  `yaml:"id" json:"id"`
	App         string  `yaml:"-" json:"app"`
	Category    string  `yaml:"-" json:"category"`
	Name        string  `yaml:"name" json:"name"`
	Kind        string  `yaml:"kind" json:"kind"`
	Description string  `yaml:"description" json:"description"`
	Method      string  `yaml:"method" json:"method"`
	Path        string  `yaml:"path" json:"path"`
	Scope       string  `yaml:"scope,omitempty" json:"scope,omitempty"`
	Version     string  `yaml:"version,omitempty" json:"version,omitempty"`
	Token       string  `yaml:"token,omitempty" json:"token,omitempty"` // location, agency, any
	Inputs      []Input `yaml:"inputs,omitempty" json:"inputs,omitempty"`
	Deprecated  bool    `yaml:"deprecated,omitempty" json:"deprecated,omitempty"`
	// Inferred marks an operation whose path or shape is inferred rather than
	// documented by the vendor; Notes says from what.
	Inferred bool   `yaml:"inferred,omitempty" json:"inferred,omitempty"`
	Notes    string `yaml:"notes,omitempty" json:"notes,omitempty"`

	// Body is the shape of the JSON body: "object" (the default) or "array",
	// a one-element array around the object (Referral Rock's bulk updates);
	// or "form" (BodyForm) for a form-encoded body.
	// Body inputs with dotted names nest: "member.email" sets {"member": {"email": ...}}.
	Body string `yaml:"body,omitempty" json:"body,omitempty"`

	// Output is the gjson path of the useful object in an action's response
	// ("contact" for {"contact": {...}}); "" = the whole response.
	Output string `yaml:"output,omitempty" json:"output,omitempty"`

	// Trigger fields.

	// Items is the gjson path of the item array in the response; "" means the
	// response is one object (see Object).
	Items string `yaml:"items,omitempty" json:"items,omitempty"`
	// Object is the gjson path of the one object a single-object trigger
	// returns ("contact" for {"contact": {...}}); "" = the whole response.
	Object string `yaml:"object,omitempty" json:"object,omitempty"`
	// ItemID is the gjson path of an item's id, relative to the item.
	ItemID string `yaml:"item_id,omitempty" json:"item_id,omitempty"`
	// ItemCreated and ItemUpdated are gjson paths of an item's creation and
	// update times, relative to the item; empty when the API has none.
	ItemCreated string `yaml:"item_created,omitempty" json:"item_created,omitempty"`
	ItemUpdated string `yaml:"item_updated,omitempty" json:"item_updated,omitempty"`
	// ItemFields lists the top-level fields of an item as the API returns
	// it, when known; recipe lint warns about .trigger fields not in it.
	ItemFields []string `yaml:"item_fields,omitempty" json:"item_fields,omitempty"`
	// Paging says how a poll walks the pages of a list.
	Paging *Paging `yaml:"paging,omitempty" json:"paging,omitempty"`
	// Since says how to ask the API only for items after a time, for the
	// cursor strategy; nil when the API cannot filter by time.
	Since *Since `yaml:"since,omitempty" json:"since,omitempty"`
	// Dedup is the default strategy; a recipe may choose another.
	Dedup string `yaml:"dedup,omitempty" json:"dedup,omitempty"`
	// Webhooks are the events that carry the trigger's items, for instant
	// recipes; nil when none do.
	Webhooks *Webhooks `yaml:"webhooks,omitempty" json:"webhooks,omitempty"`

	File string `yaml:"-" json:"-"` // the file it was loaded from
	Line int    `yaml:"-" json:"-"` // the line of its id
}

// Input is one parameter of an operation.
type Input struct {
	Name        string   `yaml:"name" json:"name"`
	Type        string   `yaml:"type" json:"type"`
	In          string   `yaml:"in" json:"in"`
	Required    bool     `yaml:"required,omitempty" json:"required,omitempty"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Enum        []string `yaml:"enum,omitempty" json:"enum,omitempty"`
	Default     any      `yaml:"default,omitempty" json:"default,omitempty"`
	Max         int      `yaml:"max,omitempty" json:"max,omitempty"`
}

// Paging describes how a trigger's list is paged.
type Paging struct {
	// Style is none, offset, page or cursor.
	Style string `yaml:"style" json:"style"`
	// In is where paging parameters go: query (default) or body.
	In string `yaml:"in,omitempty" json:"in,omitempty"`
	// Limit names the page-size parameter.
	Limit string `yaml:"limit,omitempty" json:"limit,omitempty"`
	// Offset names the item-offset parameter (offset style).
	Offset string `yaml:"offset,omitempty" json:"offset,omitempty"`
	// Page names the page-number parameter (page style); PageBase is the
	// number of the first page (0 or 1).
	Page     string `yaml:"page,omitempty" json:"page,omitempty"`
	PageBase int    `yaml:"page_base,omitempty" json:"page_base,omitempty"`
	// Next maps a request parameter to the gjson path, in the response, of
	// the value to send for the next page (cursor style).
	Next map[string]string `yaml:"next,omitempty" json:"next,omitempty"`
	// HasMore is the gjson path of a boolean that is true while more pages
	// follow; without it a short page ends the walk.
	HasMore string `yaml:"has_more,omitempty" json:"has_more,omitempty"`
	// Total is the gjson path of the total item count, when the API gives one.
	Total string `yaml:"total,omitempty" json:"total,omitempty"`
	// DefaultLimit and MaxLimit are the API's page sizes.
	DefaultLimit int `yaml:"default_limit,omitempty" json:"default_limit,omitempty"`
	MaxLimit     int `yaml:"max_limit,omitempty" json:"max_limit,omitempty"`
	// Notes records quirks of this API's paging.
	Notes string `yaml:"notes,omitempty" json:"notes,omitempty"`
}

// Since describes how to ask a trigger's API for items after a time.
type Since struct {
	// Input is the operation input that carries the time.
	Input string `yaml:"input" json:"input"`
	// Format is epoch_ms, rfc3339, date or search_filter (a GHL search
	// filter {field, operator: range, value: {gt: ...}} on Field).
	Format string `yaml:"format" json:"format"`
	// Field is the item field filtered on, for search_filter.
	Field string `yaml:"field,omitempty" json:"field,omitempty"`
}

// IsTrigger reports whether op is polled.
func (op *Operation) IsTrigger() bool { return op.Kind == KindTrigger }

// SingleObject reports whether a trigger returns one object rather than a list.
func (op *Operation) SingleObject() bool { return op.Kind == KindTrigger && op.Items == "" }

// Input returns the input called name, or nil.
func (op *Operation) Input(name string) *Input {
	for i := range op.Inputs {
		if op.Inputs[i].Name == name {
			return &op.Inputs[i]
		}
	}
	return nil
}

// PathParams returns the names of the {placeholders} in op's path, in order.
func (op *Operation) PathParams() []string { return pathParams(op.Path) }

func pathParams(path string) []string {
	var out []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, path[i+1:i+j])
		path = path[i+j+1:]
	}
}

// App returns the app with the given id, or nil.
func (c *Catalog) App(id string) *App { return c.apps[id] }

// Apps returns every app, sorted by id.
func (c *Catalog) Apps() []*App {
	out := make([]*App, 0, len(c.apps))
	for _, a := range c.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Op returns the operation with the given id, or nil.
func (c *Catalog) Op(id string) *Operation { return c.ops[id] }

// Ops returns every operation in file order.
func (c *Catalog) Ops() []*Operation {
	out := make([]*Operation, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.ops[id])
	}
	return out
}

// Filter selects operations by app, category and kind; empty fields match all.
type Filter struct {
	App, Category, Kind string
}

// Find returns the operations that match f, in file order.
func (c *Catalog) Find(f Filter) []*Operation {
	var out []*Operation
	for _, op := range c.Ops() {
		if (f.App == "" || op.App == f.App) &&
			(f.Category == "" || strings.EqualFold(op.Category, f.Category)) &&
			(f.Kind == "" || op.Kind == f.Kind) {
			out = append(out, op)
		}
	}
	return out
}

// Categories returns the category names of an app in file order.
func (c *Catalog) Categories(app string) []string {
	var out []string
	for _, op := range c.Ops() {
		if op.App == app && !slices.Contains(out, op.Category) {
			out = append(out, op.Category)
		}
	}
	return out
}

// Suggest returns the operation id closest to id, for "did you mean" hints,
// or "" when nothing is close.
func (c *Catalog) Suggest(id string) string {
	return closest(id, c.order)
}

// MustOp returns the operation with the given id and panics when there is
// none; for tests and code paths whose ids are fixed at build time.
func (c *Catalog) MustOp(id string) *Operation {
	op := c.ops[id]
	if op == nil {
		panic(fmt.Sprintf("catalog: no operation %q", id))
	}
	return op
}
