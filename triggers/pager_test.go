package triggers_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/triggers"
)

// pageStep is one answer a pager reads: its body and how many items it
// held, and what the pager should then ask for.
type pageStep struct {
	body     string
	items    int
	wantMore bool
	// wantInput are the paging inputs of the next page, when wantMore.
	wantInput map[string]any
}

func items(n int) []triggers.Item {
	out := make([]triggers.Item, n)
	for i := range out {
		out[i] = triggers.Item{Key: fmt.Sprint(i)}
	}
	return out
}

func TestPagers(t *testing.T) {
	offset := &catalog.Paging{Style: catalog.PagingOffset, Offset: "offset", Limit: "limit", Total: "total"}
	page := &catalog.Paging{Style: catalog.PagingPage, Page: "page", PageBase: 1, Limit: "limit", HasMore: "more"}
	cursor := &catalog.Paging{Style: catalog.PagingCursor, Limit: "limit",
		Next: map[string]string{"startAfter": "meta.startAfter", "startAfterId": "meta.startAfterId"}}
	for _, tc := range []struct {
		name      string
		paging    *catalog.Paging
		limit     int
		at        map[string]any
		wantFirst map[string]any
		steps     []pageStep
		// wantResume is where a walk stopped after the steps goes on.
		wantResume map[string]any
	}{
		{name: "none", paging: nil, limit: 0, wantFirst: map[string]any{},
			steps: []pageStep{{body: `{"items":[1,2]}`, items: 2}}},
		{name: "none style", paging: &catalog.Paging{Style: catalog.PagingNone}, wantFirst: map[string]any{},
			steps: []pageStep{{body: `{}`, items: 5}}},
		{name: "offset by total", paging: offset, limit: 2, wantFirst: map[string]any{"offset": 0},
			steps: []pageStep{
				{body: `{"total":5}`, items: 2, wantMore: true, wantInput: map[string]any{"offset": 2}},
				{body: `{"total":5}`, items: 2, wantMore: true, wantInput: map[string]any{"offset": 4}},
				{body: `{"total":5}`, items: 1},
			}},
		{name: "offset resumes", paging: offset, limit: 2, at: map[string]any{"offset": 6},
			wantFirst: map[string]any{"offset": 6},
			steps: []pageStep{
				{body: `{"total":20}`, items: 2, wantMore: true, wantInput: map[string]any{"offset": 8}},
			},
			wantResume: map[string]any{"offset": 8}},
		{name: "offset short page without total", paging: &catalog.Paging{Style: catalog.PagingOffset, Offset: "skip"},
			limit: 3, wantFirst: map[string]any{"skip": 0},
			steps: []pageStep{
				{body: `{}`, items: 3, wantMore: true, wantInput: map[string]any{"skip": 3}},
				{body: `{}`, items: 2},
			}},
		{name: "page by has-more", paging: page, limit: 10, wantFirst: map[string]any{"page": 1},
			steps: []pageStep{
				{body: `{"more":true}`, items: 10, wantMore: true, wantInput: map[string]any{"page": 2}},
				{body: `{"more":false}`, items: 10},
			},
			wantResume: map[string]any{"page": 3}},
		{name: "page resumes", paging: page, limit: 10, at: map[string]any{"page": 4},
			wantFirst: map[string]any{"page": 4},
			steps: []pageStep{
				{body: `{"more":true}`, items: 10, wantMore: true, wantInput: map[string]any{"page": 5}},
			},
			wantResume: map[string]any{"page": 5}},
		{name: "cursor", paging: cursor, limit: 2, wantFirst: map[string]any{},
			steps: []pageStep{
				{body: `{"meta":{"startAfter":17,"startAfterId":"b"}}`, items: 2, wantMore: true,
					wantInput: map[string]any{"startAfter": 17.0, "startAfterId": "b"}},
				{body: `{"meta":{"startAfter":null,"startAfterId":null}}`, items: 2},
			}},
		{name: "cursor resumes", paging: cursor, limit: 2, at: map[string]any{"startAfter": 9.0, "startAfterId": "x"},
			wantFirst: map[string]any{"startAfter": 9.0, "startAfterId": "x"},
			steps: []pageStep{
				{body: `{"meta":{"startAfter":5,"startAfterId":"y"}}`, items: 2, wantMore: true,
					wantInput: map[string]any{"startAfter": 5.0, "startAfterId": "y"}},
			},
			wantResume: map[string]any{"startAfter": 5.0, "startAfterId": "y"}},
		{name: "cursor short page", paging: cursor, limit: 2, wantFirst: map[string]any{},
			steps: []pageStep{
				{body: `{"meta":{"startAfter":5,"startAfterId":"y"}}`, items: 1},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := triggers.NewPager(tc.paging, tc.limit)
			input := map[string]any{}
			pg.First(input, tc.at)
			if !reflect.DeepEqual(input, tc.wantFirst) {
				t.Fatalf("first page inputs %v, want %v", input, tc.wantFirst)
			}
			for i, st := range tc.steps {
				more, err := pg.Next(input, []byte(st.body), items(st.items))
				if err != nil {
					t.Fatalf("page %d: %v", i, err)
				}
				if more != st.wantMore {
					t.Fatalf("page %d: more = %v, want %v", i, more, st.wantMore)
				}
				for k, v := range st.wantInput {
					if !reflect.DeepEqual(input[k], v) {
						t.Fatalf("page %d: next input %s = %#v, want %#v", i, k, input[k], v)
					}
				}
			}
			if tc.wantResume != nil {
				if got := pg.Resume(input); !reflect.DeepEqual(got, tc.wantResume) {
					t.Fatalf("resume at %v, want %v", got, tc.wantResume)
				}
			}
		})
	}
}

func TestPagerPositions(t *testing.T) {
	offset := &catalog.Paging{Style: catalog.PagingOffset, Offset: "offset"}
	page0 := &catalog.Paging{Style: catalog.PagingPage, Page: "page"}
	page1 := &catalog.Paging{Style: catalog.PagingPage, Page: "p", PageBase: 1}
	cursor := &catalog.Paging{Style: catalog.PagingCursor, Next: map[string]string{"after": "next"}}
	for _, tc := range []struct {
		name   string
		paging *catalog.Paging
		limit  int
		next   map[string]any
		pos    int // Position(next)
		// at is StartAt(atPos).
		atPos int
		at    map[string]any
	}{
		{name: "offset", paging: offset, limit: 50, next: map[string]any{"offset": 150}, pos: 150,
			atPos: 163, at: map[string]any{"offset": 163}},
		{name: "page base 0", paging: page0, limit: 50, next: map[string]any{"page": 3}, pos: 150,
			atPos: 163, at: map[string]any{"page": 3}},
		{name: "page base 1", paging: page1, limit: 20, next: map[string]any{"p": 3}, pos: 40,
			atPos: 40, at: map[string]any{"p": 3}},
		{name: "page rounds down", paging: page1, limit: 20, next: map[string]any{"p": 1}, pos: 0,
			atPos: 59, at: map[string]any{"p": 3}},
		{name: "cursor cannot seek", paging: cursor, limit: 20, next: map[string]any{"after": "x"}, pos: 0,
			atPos: 40, at: nil},
		{name: "none", paging: nil, limit: 20, pos: 0, atPos: 40, at: nil},
		{name: "no page size", paging: offset, limit: 0, next: map[string]any{"offset": 7}, pos: 7, atPos: 9, at: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := triggers.Position(tc.paging, tc.next, tc.limit); got != tc.pos {
				t.Fatalf("Position = %d, want %d", got, tc.pos)
			}
			if got := triggers.StartAt(tc.paging, tc.atPos, tc.limit); !reflect.DeepEqual(got, tc.at) {
				t.Fatalf("StartAt(%d) = %v, want %v", tc.atPos, got, tc.at)
			}
		})
	}
}
