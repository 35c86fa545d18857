package dedup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/dedup"
	"github.com/ghlflow/ghlflow/internal/redistest"
)

func newStore(t testing.TB, keep int) (*dedup.Store, *redis.Client) {
	t.Helper()
	rdb, prefix := redistest.New(t)
	return dedup.New(rdb, dedup.Options{Prefix: prefix, Keep: keep}), rdb
}

var base = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// page returns items n..n+size-1 (item i created at base+i s), oldest first.
func page(from, size int) []dedup.Item {
	out := make([]dedup.Item, size)
	for i := range out {
		out[i] = dedup.Item{Key: fmt.Sprintf("item%d", from+i), Time: base.Add(time.Duration(from+i) * time.Second)}
	}
	return out
}

func newKeys(items []dedup.Item, d *dedup.Decision) []string {
	var out []string
	for i, b := range d.New {
		if b {
			out = append(out, items[i].Key)
		}
	}
	return out
}

func TestSeedThenNew(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	first := page(0, 50)
	d, err := s.Decide(ctx, "s1", first, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Seeded || d.NewCount() != 0 {
		t.Fatalf("first poll: seeded %v new %d", d.Seeded, d.NewCount())
	}
	// Deciding again without a commit changes nothing.
	if d, _ = s.Decide(ctx, "s1", first, 0); d.Seeded {
		t.Fatal("decide recorded state")
	}
	if err := s.Commit(ctx, "s1", first, 0); err != nil {
		t.Fatal(err)
	}
	next := page(0, 57)
	d, err = s.Decide(ctx, "s1", next, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := newKeys(next, d)
	if len(got) != 7 || got[0] != "item50" || got[6] != "item56" || !d.Seeded {
		t.Fatalf("new %v", got)
	}
	if d.Watermark != base.Add(49*time.Second) {
		t.Fatalf("watermark %s", d.Watermark)
	}
	st, err := s.State(ctx, "s1")
	if err != nil || !st.Seeded || st.Watermark != d.Watermark || st.Floor != base {
		t.Fatalf("state %+v %v", st, err)
	}
	if st, _ := s.State(ctx, "none"); st.Seeded || !st.Watermark.IsZero() {
		t.Fatalf("state of nothing %+v", st)
	}
	// Older items never committed sit under the seed's floor.
	older := []dedup.Item{{Key: "old", Time: base.Add(-time.Hour)}}
	if d, _ = s.Decide(ctx, "s1", older, 0); d.New[0] {
		t.Fatal("an item older than the seed is new")
	}
}

func TestBackfill(t *testing.T) {
	s, _ := newStore(t, 0)
	items := page(0, 20)
	d, err := s.Mark(context.Background(), "s", items, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := newKeys(items, d); fmt.Sprint(got) != "[item17 item18 item19]" {
		t.Fatalf("backfill %v", got)
	}
	if d, _ = s.Mark(context.Background(), "s", items, 0, 3); d.NewCount() != 0 {
		t.Fatal("backfill again after the seed")
	}
}

func TestLargeFirstMark(t *testing.T) {
	s, _ := newStore(t, 0)
	items := page(0, 4500)
	d, err := s.Mark(context.Background(), "large", items, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := newKeys(items, d); fmt.Sprint(got) != "[item4498 item4499]" {
		t.Fatalf("new %v", got)
	}
	if d, _ = s.Decide(context.Background(), "large", page(0, 4501), 0); d.NewCount() != 1 || !d.New[4500] {
		t.Fatalf("after: %d new", d.NewCount())
	}
}

func TestUntimedAndChanged(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	// A one-object trigger keyed by content hash keeps one key: A, B, A
	// fires twice after the seed.
	var fired []string
	for _, k := range []string{"A", "A", "B", "B", "A"} {
		d, err := s.Mark(ctx, "obj", []dedup.Item{{Key: k}}, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.New[0] {
			fired = append(fired, k)
		}
	}
	if fmt.Sprint(fired) != "[B A]" {
		t.Fatalf("fired %v", fired)
	}
}

// TestBounded: 1,000 polls of a 100-item page with 5 new items each; the
// subscription's footprint stays under 4 KB and no item fires twice.
func TestBounded(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	fired := 0
	for poll := 0; poll < 1000; poll++ {
		items := page(poll*5, 100)
		d, err := s.Decide(ctx, "big", items, 0)
		if err != nil {
			t.Fatal(err)
		}
		fired += d.NewCount()
		if poll > 0 && d.NewCount() != 5 {
			t.Fatalf("poll %d: %d new", poll, d.NewCount())
		}
		if err := s.Commit(ctx, "big", items, 0); err != nil {
			t.Fatal(err)
		}
	}
	mem, err := s.MemoryUsage(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 1,000 polls of 100 items (5 new each): %d chains, MEMORY USAGE %d bytes over %v", fired, mem, s.Keys("big"))
	fmt.Printf("dedup footprint after 1,000 polls: %d bytes\n", mem)
	if fired != 999*5 {
		t.Fatalf("fired %d", fired)
	}
	if mem >= 4096 {
		t.Fatalf("footprint %d bytes", mem)
	}
}

func TestHashTag(t *testing.T) {
	s, _ := newStore(t, 0)
	for _, k := range s.Keys("abc") {
		if want := "{sub:abc}"; !contains(k, want) {
			t.Fatalf("%s lacks %s", k, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func BenchmarkDecide100(b *testing.B) {
	s, _ := newStore(b, 0)
	ctx := context.Background()
	items := page(0, 100)
	if err := s.Commit(ctx, "bench", items[:95], 0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := s.Decide(ctx, "bench", items, 0)
		if err != nil || d.NewCount() != 5 {
			b.Fatal(err, d.NewCount())
		}
	}
}

func BenchmarkMark100(b *testing.B) {
	s, _ := newStore(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Mark(ctx, "bench", page(i*5, 100), 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCommitBacklog: the backlog is written and removed by the commit that
// records the poll's items; a plain commit leaves it as it is.
func TestCommitBacklog(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	floor := time.UnixMilli(5000).UTC()
	bl := &dedup.Backlog{Next: map[string]any{"page": 3}, Offset: 20, Floor: floor}
	if err := s.CommitAppend(ctx, "b", page(0, 10), 0, true, bl, nil); err != nil {
		t.Fatal(err)
	}
	st, err := s.State(ctx, "b")
	if err != nil || st.Backlog == nil || st.Backlog.Offset != 20 || !st.Backlog.Floor.Equal(floor) ||
		fmt.Sprint(st.Backlog.Next) != "map[page:3]" || !st.Seeded {
		t.Fatalf("after the commit with a backlog: %+v %+v %v", st, st.Backlog, err)
	}
	if err := s.Commit(ctx, "b", page(10, 5), 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(ctx, "b"); st.Backlog == nil {
		t.Fatal("a plain commit removed the backlog")
	}
	if err := s.CommitAppend(ctx, "b", page(15, 5), 0, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(ctx, "b"); st.Backlog != nil {
		t.Fatalf("backlog left: %+v", st.Backlog)
	}
}

// TestCommitAppend: a commit that carries an entry records the items and
// pushes the entry onto its list, capped and expiring, in the same call;
// the backlog is left, set or removed as asked.
func TestCommitAppend(t *testing.T) {
	s, rdb := newStore(t, 0)
	ctx := context.Background()
	list := s.Keys("s1")[0] + ":list"
	for i := range 4 {
		app := &dedup.Append{Key: list, Value: []byte(fmt.Sprint(i)), Keep: 3, TTL: time.Hour}
		var bl *dedup.Backlog
		if i == 1 {
			bl = &dedup.Backlog{Offset: 7, Floor: base}
		}
		if err := s.CommitAppend(ctx, "s1", page(i*10, 10), 0, i != 2, bl, app); err != nil {
			t.Fatal(err)
		}
		st, err := s.State(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if hasBacklog := st.Backlog != nil; hasBacklog != (i == 1 || i == 2) {
			t.Fatalf("commit %d: backlog %+v", i, st.Backlog)
		}
	}
	got, err := rdb.LRange(ctx, list, 0, -1).Result()
	if err != nil || fmt.Sprint(got) != "[3 2 1]" {
		t.Fatalf("list = %v, %v", got, err)
	}
	if ttl := rdb.TTL(ctx, list).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("ttl %v", ttl)
	}
	d, err := s.Decide(ctx, "s1", page(35, 10), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Seeded || fmt.Sprint(newKeys(page(35, 10), d)) != "[item40 item41 item42 item43 item44]" {
		t.Fatalf("decision after the commits: %+v", d)
	}
}
