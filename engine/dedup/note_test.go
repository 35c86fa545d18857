package dedup_test

import (
	"context"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/engine/dedup"
)

// TestNote: keys noted from webhooks are known to the next decision, but
// the subscription stays unseeded and its watermark and floor stay where
// the polls left them; the next commit trims as usual.
func TestNote(t *testing.T) {
	s, _ := newStore(t, 3)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	if err := s.Note(ctx, "sub", []dedup.Item{{Key: "a", Time: at(5)}}); err != nil {
		t.Fatal(err)
	}
	st, err := s.State(ctx, "sub")
	if err != nil || st.Seeded || !st.Watermark.IsZero() || !st.Floor.IsZero() {
		t.Fatalf("after a note on a new subscription: %+v %v", st, err)
	}
	if err := s.Commit(ctx, "sub", []dedup.Item{{Key: "p", Time: at(1)}}, 0); err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"b", "c", "d", "e"} {
		if err := s.Note(ctx, "sub", []dedup.Item{{Key: key, Time: at(10 + i)}, {Key: "u" + key}}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = s.State(ctx, "sub")
	if !st.Seeded || !st.Watermark.Equal(at(1)) || !st.Floor.Equal(at(1)) {
		t.Fatalf("notes moved the poll's state: %+v", st)
	}
	d, err := s.Decide(ctx, "sub", []dedup.Item{{Key: "a", Time: at(5)}, {Key: "e", Time: at(13)}, {Key: "ue"},
		{Key: "lost", Time: at(4)}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Known[0] || !d.Known[1] || !d.Known[2] || d.Known[3] {
		t.Fatalf("known %v, want the noted keys only", d.Known)
	}
}
