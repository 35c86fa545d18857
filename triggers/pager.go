package triggers

import (
	"errors"
	"maps"

	"github.com/tidwall/gjson"

	"github.com/ghlflow/ghlflow/catalog"
)

// Pager walks the pages of a list in one paging style (none, offset, page,
// cursor). It sets the paging inputs of each page in the request inputs,
// decides from a page's answer whether another page follows, and says where
// a walk stopped by its page cap goes on. NewPager returns the pager of an
// operation's paging.
type Pager interface {
	// First sets the inputs of the first page: the top of the list, or
	// the page at (a Result's Next, or StartAt's answer) when at is set.
	First(input, at map[string]any)
	// Next learns from a page's body and items whether another page
	// follows and, when one does, sets its inputs.
	Next(input map[string]any, body []byte, items []Item) (more bool, err error)
	// Resume returns the paging inputs of the page after the last one
	// read, for a later walk to go on from (Result.Next); nil when the
	// style cannot go on.
	Resume(input map[string]any) map[string]any
	// Position returns how many items of the list lie above the page the
	// paging inputs at start (0 for the styles that cannot tell).
	Position(at map[string]any) int
	// StartAt returns the paging inputs of the page that holds item
	// number pos (a page style rounds down to the page's first item), or
	// nil for the styles that cannot seek.
	StartAt(pos int) map[string]any

	// index is the 0-based number of the page the inputs ask for.
	index() int
	// seek sets the inputs of the 0-based page idx for a walk from the
	// end of the list; false when the style cannot seek.
	seek(input map[string]any, idx int) bool
}

// NewPager returns the pager of p (nil p or style: none, a one-page list)
// asking for pages of limit items (0 = the API's own page size).
func NewPager(p *catalog.Paging, limit int) Pager {
	if p == nil {
		return &nonePager{}
	}
	switch p.Style {
	case catalog.PagingOffset:
		return &offsetPager{p: p, limit: limit}
	case catalog.PagingPage:
		return &pagePager{p: p, limit: limit}
	case catalog.PagingCursor:
		return &cursorPager{p: p, limit: limit}
	}
	return &nonePager{}
}

// Position returns how many items of the list lie above the page that the
// paging inputs next start (offset and page styles; 0 for the others).
func Position(p *catalog.Paging, next map[string]any, limit int) int {
	return NewPager(p, limit).Position(next)
}

// StartAt returns the paging inputs of the page that holds item number pos
// (offset and page styles; a page style rounds down to the page's first
// item), or nil for the other styles.
func StartAt(p *catalog.Paging, pos, limit int) map[string]any {
	if limit <= 0 {
		return nil
	}
	return NewPager(p, limit).StartAt(pos)
}

// nonePager is a list of one page.
type nonePager struct{}

func (*nonePager) First(input, at map[string]any) { maps.Copy(input, at) }
func (*nonePager) Next(map[string]any, []byte, []Item) (bool, error) {
	return false, nil
}
func (*nonePager) Resume(map[string]any) map[string]any { return nil }
func (*nonePager) Position(map[string]any) int          { return 0 }
func (*nonePager) StartAt(int) map[string]any           { return nil }
func (*nonePager) index() int                           { return 0 }
func (*nonePager) seek(map[string]any, int) bool        { return false }

// offsetPager pages by an item offset.
type offsetPager struct {
	p      *catalog.Paging
	limit  int
	offset int // of the page the inputs ask for
	pages  int // pages read since the walk's first page
}

func (o *offsetPager) First(input, at map[string]any) {
	maps.Copy(input, at)
	o.offset, o.pages = toInt(at[o.p.Offset]), 0
	input[o.p.Offset] = o.offset
}

func (o *offsetPager) Next(input map[string]any, body []byte, items []Item) (bool, error) {
	o.offset += len(items)
	o.pages++
	input[o.p.Offset] = o.offset
	return more(o.p, body, items, o.limit, o.offset), nil
}

func (o *offsetPager) Resume(map[string]any) map[string]any {
	return map[string]any{o.p.Offset: o.offset}
}

func (o *offsetPager) Position(at map[string]any) int { return toInt(at[o.p.Offset]) }

func (o *offsetPager) StartAt(pos int) map[string]any {
	if o.limit <= 0 {
		return nil
	}
	return map[string]any{o.p.Offset: pos}
}

func (o *offsetPager) index() int { return o.pages }

func (o *offsetPager) seek(input map[string]any, idx int) bool {
	o.offset, o.pages = idx*o.limit, idx
	input[o.p.Offset] = o.offset
	return o.limit > 0
}

// pagePager pages by a page number counted from PageBase.
type pagePager struct {
	p     *catalog.Paging
	limit int
	page  int // 0-based page the inputs ask for
	read  int // items read since the walk's first page
}

func (g *pagePager) First(input, at map[string]any) {
	maps.Copy(input, at)
	g.page, g.read = 0, 0
	if len(at) > 0 {
		g.page = max(toInt(at[g.p.Page])-g.p.PageBase, 0)
	}
	input[g.p.Page] = g.p.PageBase + g.page
}

func (g *pagePager) Next(input map[string]any, body []byte, items []Item) (bool, error) {
	g.page++
	g.read += len(items)
	input[g.p.Page] = g.p.PageBase + g.page
	return more(g.p, body, items, g.limit, g.read), nil
}

func (g *pagePager) Resume(map[string]any) map[string]any {
	return map[string]any{g.p.Page: g.p.PageBase + g.page}
}

func (g *pagePager) Position(at map[string]any) int {
	return (toInt(at[g.p.Page]) - g.p.PageBase) * g.limit
}

func (g *pagePager) StartAt(pos int) map[string]any {
	if g.limit <= 0 {
		return nil
	}
	return map[string]any{g.p.Page: g.p.PageBase + pos/g.limit}
}

func (g *pagePager) index() int { return g.page }

func (g *pagePager) seek(input map[string]any, idx int) bool {
	g.page = idx
	input[g.p.Page] = g.p.PageBase + idx
	return g.limit > 0
}

// cursorPager pages by values the answer carries for the next request.
type cursorPager struct {
	p     *catalog.Paging
	limit int
	pages int
}

func (c *cursorPager) First(input, at map[string]any) {
	maps.Copy(input, at)
	c.pages = 0
}

func (c *cursorPager) Next(input map[string]any, body []byte, items []Item) (bool, error) {
	if len(c.p.Next) == 0 {
		return false, errors.New("cursor paging without next paths")
	}
	c.pages++
	found := false
	for param, path := range c.p.Next {
		v := gjson.GetBytes(body, path)
		if !v.Exists() || v.Type == gjson.Null || v.String() == "" {
			delete(input, param)
			continue
		}
		found = true
		input[param] = v.Value()
	}
	if !found {
		return false, nil
	}
	// The total counts the whole list, not what lies after a cursor.
	return more(c.p, body, items, c.limit, -1), nil
}

func (c *cursorPager) Resume(input map[string]any) map[string]any {
	next := map[string]any{}
	for param := range c.p.Next {
		if v, ok := input[param]; ok {
			next[param] = v
		}
	}
	if len(next) == 0 {
		return nil
	}
	return next
}

func (*cursorPager) Position(map[string]any) int   { return 0 }
func (*cursorPager) StartAt(int) map[string]any    { return nil }
func (c *cursorPager) index() int                  { return c.pages }
func (*cursorPager) seek(map[string]any, int) bool { return false }

// more decides whether another page follows a page of items: the answer's
// has-more flag, else its total against pos (the items above the next page;
// negative = do not use the total), else whether the page was full.
func more(p *catalog.Paging, body []byte, items []Item, limit, pos int) bool {
	if p.HasMore != "" {
		if v := gjson.GetBytes(body, p.HasMore); v.Exists() {
			return v.Bool()
		}
	}
	if p.Total != "" && pos >= 0 {
		if v := gjson.GetBytes(body, p.Total); v.Exists() {
			return pos < int(v.Int())
		}
	}
	return limit <= 0 || len(items) >= limit
}
