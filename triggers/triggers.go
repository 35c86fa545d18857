// Package triggers polls a trigger operation: it walks the pages of a list,
// extracts the items with gjson and keys each one by a dedup strategy. It
// keeps no state; the engine decides which keys are new.
package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog"
)

// Caller makes one API call of an operation through a connection and
// returns the response body; engine/transport implements it. actions
// declares the same method as actions.Caller (triggers and actions do not
// import each other), and the engine holds one value for both.
type Caller interface {
	Call(ctx context.Context, connection string, op *catalog.Operation, input map[string]any) ([]byte, error)
}

// DefaultMaxPages caps the pages one poll reads when neither the options
// nor the recipe say otherwise. A poll of a list read newest first stops at
// the first known items, so the cap costs nothing in the usual case; a
// walk stopped by it returns where to go on (Result.Next), which the engine
// keeps as a backlog for its next polls.
const DefaultMaxPages = 100

// DefaultLimit is the page size asked for when the options do not set one
// (lowered to the API's maximum).
const DefaultLimit = 100

// Item is one trigger item as a poll read it.
type Item struct {
	// Key is the dedup key: what makes the item new for the strategy.
	Key string
	// ID is the item's id ("" for objects without one).
	ID string
	// Time is the item's time for the strategy (creation or update time);
	// zero when the item carries none.
	Time time.Time
	// Raw is the item's JSON as the API returned it.
	Raw json.RawMessage
}

// Options tune one poll.
type Options struct {
	// Dedup is the strategy that keys the items (id, updated, cursor,
	// changed); "" = the operation's default.
	Dedup string
	// MaxPages caps the pages read (0 = DefaultMaxPages).
	MaxPages int
	// Limit is the page size (0 = DefaultLimit, lowered to the API's
	// maximum). A limit set in the params wins.
	Limit int
	// Since, when not zero and the strategy is cursor, asks the API only for
	// items after it (through the operation's since input).
	Since time.Time
	// Seen is called after each page with that page's items, newest
	// first; when it reports that the walk reached known items, the walk
	// stops. A list the API gives oldest first is walked backwards from its
	// last page when the total is known (offset and page styles: the first
	// page is read only to learn the order and the total), else read on to
	// its end or the cap without asking Seen.
	Seen func(ctx context.Context, page []Item) (reachedKnown bool, err error)
	// Start, when set, are the paging inputs of the first page to read (a
	// Result's Next, shifted by the caller as the list grew): the walk goes
	// on from there towards older items instead of from the top.
	Start map[string]any
}

// Result is what one poll read.
type Result struct {
	// Items are the distinct items read, oldest first.
	Items []Item
	// Pages is the number of requests made.
	Pages int
	// End is true when the walk reached the end of the list (or stopped
	// at known items) rather than the page cap.
	End bool
	// StoppedAtSeen is true when a page of known items ended the walk.
	StoppedAtSeen bool
	// OldestFirst is true when the items' times showed the API lists the
	// oldest items first (such a list is read to its end or the page cap).
	OldestFirst bool
	// Next, when the walk stopped at the page cap of a list read from the
	// top, holds the paging inputs of the next page, to go on from there
	// in a later poll (Options.Start).
	Next map[string]any
	// Limit is the page size the walk asked for (0 = the API's own).
	Limit int
}

// Poll runs one poll of op through caller and conn with the recipe's
// params: it pages per op.Paging, adds the since input for the cursor
// strategy, and keys the items by the dedup strategy.
func Poll(ctx context.Context, caller Caller, conn string, op *catalog.Operation, params map[string]any, opts Options) (*Result, error) {
	if !op.IsTrigger() {
		return nil, fmt.Errorf("poll %s: not a trigger", op.ID)
	}
	w, err := newWalk(op, params, opts)
	if err != nil {
		return nil, fmt.Errorf("poll %s: %w", op.ID, err)
	}
	return w.run(ctx, caller, conn)
}

// walk is the state of one poll's walk over the pages of a list.
type walk struct {
	op       *catalog.Operation
	strategy string
	opts     Options
	maxPages int
	input    map[string]any
	pager    Pager
	res      *Result
	seen     map[string]bool
	all      []Item
	// order is +1 when the list reads newest first, -1 oldest first, 0
	// while unknown.
	order int
	// back >= 0 is the next page (0-based) of a walk from the end: a list
	// read oldest first whose total is known is walked from its last page
	// towards the first, so the newest items come first.
	back int
}

// newWalk prepares the inputs of a poll: the params, the since input of
// the cursor strategy and the page size.
func newWalk(op *catalog.Operation, params map[string]any, opts Options) (*walk, error) {
	w := &walk{op: op, strategy: opts.Dedup, opts: opts, maxPages: opts.MaxPages, seen: map[string]bool{}, back: -1}
	if w.strategy == "" {
		w.strategy = op.Dedup
	}
	if w.maxPages <= 0 {
		w.maxPages = DefaultMaxPages
	}
	w.input = make(map[string]any, len(params)+4)
	maps.Copy(w.input, params)
	if w.strategy == catalog.DedupCursor && !opts.Since.IsZero() && op.Since != nil {
		v, err := SinceValue(op.Since, opts.Since, w.input[op.Since.Input])
		if err != nil {
			return nil, err
		}
		w.input[op.Since.Input] = v
	}
	limit := pageLimit(op.Paging, w.input, opts.Limit)
	w.res = &Result{Limit: limit}
	w.pager = NewPager(op.Paging, limit)
	return w, nil
}

// pageLimit is the page size of a walk: the params' own, else want (or
// DefaultLimit) lowered to the API's maximum and set in input. 0 when the
// list does not page or takes no size.
func pageLimit(p *catalog.Paging, input map[string]any, want int) int {
	if p == nil || p.Style == "" || p.Style == catalog.PagingNone || p.Limit == "" {
		return 0
	}
	if v, ok := input[p.Limit]; ok {
		return toInt(v)
	}
	limit := want
	if limit <= 0 {
		limit = DefaultLimit
	}
	if p.MaxLimit > 0 && limit > p.MaxLimit {
		limit = p.MaxLimit
	}
	input[p.Limit] = limit
	return limit
}

// run reads pages until the end of the list, known items or the page cap.
func (w *walk) run(ctx context.Context, caller Caller, conn string) (*Result, error) {
	w.pager.First(w.input, w.opts.Start)
	for page := 0; page < w.maxPages; page++ {
		idx := w.pager.index()
		body, err := caller.Call(ctx, conn, w.op, w.input)
		w.res.Pages++
		if err == nil {
			var done bool
			if done, err = w.take(ctx, page, body); done {
				return finish(w.res, w.all, w.order), nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("poll %s page %d: %w", w.op.ID, idx+1, err)
		}
	}
	if w.back < 0 {
		w.res.Next = w.pager.Resume(w.input)
	}
	return finish(w.res, w.all, w.order), nil
}

// take reads one page's answer and sets the inputs of the next page; done
// reports that the walk is over.
func (w *walk) take(ctx context.Context, page int, body []byte) (done bool, err error) {
	items, err := Extract(w.op, w.strategy, body)
	if err != nil {
		return false, err
	}
	if o := pageOrder(items); o != 0 && w.order == 0 {
		w.order = o
	}
	if page == 0 && w.fromEnd(body) {
		// The first page only told the order and the total.
		return false, nil
	}
	w.keep(items)
	if _, one := w.pager.(*nonePager); one || len(items) == 0 {
		w.res.End = true
		return true, nil
	}
	if known, err := w.reachedKnown(ctx, items); err != nil || known {
		w.res.End, w.res.StoppedAtSeen = known, known
		return known, err
	}
	if w.back >= 0 {
		if w.back--; w.back < 1 {
			// Page 0 was read first; its items are the oldest and known
			// by now or under the floor.
			w.res.End = true
			return true, nil
		}
		w.pager.seek(w.input, w.back)
		return false, nil
	}
	more, err := w.pager.Next(w.input, body, items)
	if err != nil {
		return false, err
	}
	w.res.End = !more
	return !more, nil
}

// fromEnd turns the walk of a list read oldest first, whose total is
// known, to its last page; the walk then goes backwards so that it meets
// the newest items first and can stop at known ones.
func (w *walk) fromEnd(body []byte) bool {
	p, limit := w.op.Paging, w.res.Limit
	if w.order >= 0 || w.opts.Seen == nil || limit <= 0 || p == nil || p.Total == "" || len(w.opts.Start) > 0 {
		return false
	}
	total := int(gjson.GetBytes(body, p.Total).Int())
	if total <= limit || !w.pager.seek(w.input, (total-1)/limit) {
		return false
	}
	w.back = (total - 1) / limit
	return true
}

// keep adds the page's items not read before in this walk.
func (w *walk) keep(items []Item) {
	for _, it := range items {
		if !w.seen[it.Key] {
			w.seen[it.Key] = true
			w.all = append(w.all, it)
		}
	}
}

// reachedKnown asks Options.Seen whether the page holds known items; a
// list read oldest first from the top is not asked (its known items come
// first).
func (w *walk) reachedKnown(ctx context.Context, items []Item) (bool, error) {
	if w.opts.Seen == nil || (w.order < 0 && w.back < 0) {
		return false, nil
	}
	return w.opts.Seen(ctx, newestFirst(items, w.order))
}

// newestFirst returns a page's items newest first.
func newestFirst(items []Item, order int) []Item {
	if order >= 0 {
		return items
	}
	out := make([]Item, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it
	}
	return out
}

// finish puts the items oldest first: by time where the items carry one
// (ties keep the list's order), else the reverse of a newest-first list.
func finish(res *Result, all []Item, order int) *Result {
	res.OldestFirst = order < 0
	if order > 0 || order == 0 {
		// Newest first (or unknown: most APIs list newest first).
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	if order != 0 {
		sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	}
	res.Items = all
	return res
}

// pageOrder tells from the items' times whether a page lists newest first
// (+1), oldest first (-1) or cannot tell (0).
func pageOrder(items []Item) int {
	var first, last time.Time
	for _, it := range items {
		if it.Time.IsZero() {
			continue
		}
		if first.IsZero() {
			first = it.Time
		}
		last = it.Time
	}
	switch {
	case first.After(last):
		return 1
	case first.Before(last):
		return -1
	}
	return 0
}

// Extract reads the items of one response of op and keys them by strategy.
func Extract(op *catalog.Operation, strategy string, body []byte) ([]Item, error) {
	if !gjson.ValidBytes(body) {
		return nil, errors.New("response is not JSON")
	}
	if strategy == "" {
		strategy = op.Dedup
	}
	// Read body in place: gjson's results are then slices of it, and each
	// item's Raw is a slice of body instead of a copy.
	doc := view(body)
	var raws []gjson.Result
	if op.Items == "" {
		obj := gjson.Parse(doc)
		if op.Object != "" {
			obj = gjson.Get(doc, op.Object)
		}
		if obj.Exists() && obj.IsObject() {
			raws = append(raws, obj)
		}
	} else {
		list := gjson.Get(doc, op.Items)
		if list.Exists() && list.Type != gjson.Null && !list.IsArray() {
			return nil, fmt.Errorf("%s: items at %q are not a list", op.ID, op.Items)
		}
		raws = list.Array()
	}
	items := make([]Item, 0, len(raws))
	for _, r := range raws {
		it, err := keyItem(op, strategy, r)
		if err != nil {
			return nil, err
		}
		it.Raw = rawOf(body, r.Raw)
		items = append(items, it)
	}
	return items, nil
}

// view is body as a string, without a copy: Extract only reads body, which
// nothing changes once it is read.
func view(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	return unsafe.String(&body[0], len(body))
}

// rawOf returns raw, a part of view(body), as the slice of body it spans
// (capped there, so an append copies); a raw from elsewhere is copied.
func rawOf(body []byte, raw string) json.RawMessage {
	if len(raw) == 0 || len(body) == 0 {
		return json.RawMessage(raw)
	}
	p, b := uintptr(unsafe.Pointer(unsafe.StringData(raw))), uintptr(unsafe.Pointer(&body[0]))
	if p < b || p-b > uintptr(len(body)-len(raw)) || len(raw) > len(body) {
		return json.RawMessage(raw)
	}
	off := int(p - b)
	return body[off : off+len(raw) : off+len(raw)]
}

// keyItem computes an item's id, time and key (the caller sets Raw).
func keyItem(op *catalog.Operation, strategy string, r gjson.Result) (Item, error) {
	var it Item
	idv, createdv, updatedv := itemFields(op, r)
	it.ID = idv.String()
	created, updated := ParseTime(createdv), ParseTime(updatedv)
	switch strategy {
	case catalog.DedupID, "":
		if it.ID == "" {
			return it, fmt.Errorf("%s: item without an id at %q", op.ID, op.ItemID)
		}
		it.Key, it.Time = it.ID, first(created, updated)
	case catalog.DedupUpdated:
		if it.ID == "" {
			return it, fmt.Errorf("%s: item without an id at %q", op.ID, op.ItemID)
		}
		it.Time = first(updated, created)
		ver := updatedv.String()
		if ver == "" {
			ver = "#" + contentHash(r.Raw)
		}
		it.Key = it.ID + "@" + ver
	case catalog.DedupCursor:
		if it.ID == "" {
			return it, fmt.Errorf("%s: item without an id at %q", op.ID, op.ItemID)
		}
		it.Time = first(created, updated)
		it.Key = strconv.FormatInt(it.Time.UnixMilli(), 10) + ":" + it.ID
	case catalog.DedupChanged:
		it.Time = updated
		if !updated.IsZero() {
			it.Key = it.ID + "@" + updatedv.String()
		} else {
			it.Key = it.ID + "#" + contentHash(r.Raw)
		}
	default:
		return it, fmt.Errorf("%s: unknown dedup strategy %q", op.ID, strategy)
	}
	return it, nil
}

// itemFields reads an item's id, created and updated values (a path left
// empty reads as nothing). When every path is a plain key, as in nearly
// every operation, one pass over the item's fields finds all three
// instead of one scan per path.
func itemFields(op *catalog.Operation, r gjson.Result) (id, created, updated gjson.Result) {
	if !plainKey(op.ItemID) || !plainKey(op.ItemCreated) || !plainKey(op.ItemUpdated) {
		get := func(path string) gjson.Result {
			if path == "" {
				return gjson.Result{}
			}
			return r.Get(path)
		}
		return get(op.ItemID), get(op.ItemCreated), get(op.ItemUpdated)
	}
	var seenID, seenCreated, seenUpdated bool
	r.ForEach(func(k, v gjson.Result) bool {
		// The first of a repeated key counts, as with Get.
		if k.Str == "" {
			return true
		}
		if k.Str == op.ItemID && !seenID {
			id, seenID = v, true
		}
		if k.Str == op.ItemCreated && !seenCreated {
			created, seenCreated = v, true
		}
		if k.Str == op.ItemUpdated && !seenUpdated {
			updated, seenUpdated = v, true
		}
		return true
	})
	return id, created, updated
}

// plainKey reports whether path names one key of the object itself: no
// nesting, wildcards, modifiers or escapes ("" is plain: it reads nothing).
func plainKey(path string) bool {
	return !strings.ContainsAny(path, ".*?|#@\\!")
}

func first(a, b time.Time) time.Time {
	if !a.IsZero() {
		return a
	}
	return b
}

// contentHash is a short hash of an object's JSON with its keys sorted, so
// the order of fields does not count as a change.
func contentHash(raw string) string {
	var v any
	canon := []byte(raw)
	if err := json.Unmarshal(canon, &v); err == nil {
		if b, err := json.Marshal(v); err == nil { // encoding/json sorts map keys
			canon = b
		}
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:12])
}

// ParseTime reads a JSON value as a time: RFC 3339 text, a date, or epoch
// milliseconds (seconds when below 1e11). Zero when it is none of these.
func ParseTime(v gjson.Result) time.Time {
	switch v.Type {
	case gjson.Number:
		return epoch(v.Float())
	case gjson.String:
		s := v.String()
		// Only a plain number is tried as epoch time: a failed ParseFloat
		// allocates its error, and most times are text.
		if s != "" && s[0] >= '0' && s[0] <= '9' && !strings.ContainsAny(s, "-:T /") {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				return epoch(f)
			}
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC()
			}
		}
	}
	return time.Time{}
}

func epoch(f float64) time.Time {
	if f <= 0 {
		return time.Time{}
	}
	if f < 1e11 {
		return time.Unix(0, int64(f*1e9)).UTC()
	}
	return time.UnixMilli(int64(f)).UTC()
}

// SinceValue is the value of the since input asking for items after t, in
// the format s names (for date, from the day before t's day). For search_filter the filter is appended to the
// filters already in the params (prev).
func SinceValue(s *catalog.Since, t time.Time, prev any) (any, error) {
	t = t.UTC()
	switch s.Format {
	case "epoch_ms":
		return t.UnixMilli(), nil
	case "rfc3339":
		return t.Format("2006-01-02T15:04:05.000Z07:00"), nil
	case "date":
		// A date filter is coarse and its time zone unknown: ask from the
		// day before, and let dedup drop the repeats.
		return t.AddDate(0, 0, -1).Format("2006-01-02"), nil
	case "search_filter":
		if s.Field == "" {
			return nil, errors.New("search_filter since without a field")
		}
		f := map[string]any{"field": s.Field, "operator": "range",
			"value": map[string]any{"gt": t.Format("2006-01-02T15:04:05.000Z07:00")}}
		var list []any
		switch p := prev.(type) {
		case nil:
		case []any:
			list = append(list, p...)
		case []map[string]any:
			for _, m := range p {
				list = append(list, m)
			}
		default:
			return nil, fmt.Errorf("since: %s is %T, not a list of filters", s.Input, prev)
		}
		return append(list, f), nil
	}
	return nil, fmt.Errorf("since: unknown format %q", s.Format)
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(strings.TrimSpace(x))
		return n
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	}
	return 0
}
