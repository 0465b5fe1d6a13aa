package usage

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestFactsChangedSince: each published generation names the profiles
// whose facts it changed (recorded answers, and profiles whose answers
// all left the 30 days), ChangedSince gathers them across generations,
// and says it cannot once the log no longer reaches back.
func TestFactsChangedSince(t *testing.T) {
	t.Parallel()
	c := &clock{t: t0}
	s, err := Open(filepath.Join(t.TempDir(), "usage.db"), Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	since := func(old *Facts) []string {
		t.Helper()
		ids, ok := s.Facts().ChangedSince(old.Gen)
		if !ok {
			t.Fatalf("ChangedSince(%d) at %d: cannot say", old.Gen, s.Facts().Gen)
		}
		slices.Sort(ids)
		return slices.Compact(ids)
	}
	f0 := s.Facts()
	s.Record(rec(t0, "main", "p", 10, 10))
	f1 := s.Facts()
	s.Record(rec(t0, "cron", "q", 10, 10))
	if got := since(f1); !slices.Equal(got, []string{"q"}) {
		t.Errorf("after q's answer: %v changed, want [q]", got)
	}
	if got := since(f0); !slices.Equal(got, []string{"p", "q"}) {
		t.Errorf("since the start: %v changed, want [p q]", got)
	}
	if ids, ok := s.Facts().ChangedSince(s.Facts().Gen); !ok || len(ids) != 0 {
		t.Errorf("since now: %v, %v", ids, ok)
	}
	if _, ok := f1.ChangedSince(s.Facts().Gen); ok {
		t.Error("an older generation says what changed since a newer one")
	}

	f2 := s.Facts()
	c.set(t0.Add(31 * 24 * time.Hour)) // p and q leave every window
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.tickRolls(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Record(rec(c.now(), "main", "r", 1, 1))
	if got := since(f2); !slices.Equal(got, []string{"p", "q", "r"}) {
		t.Errorf("after 31 days: %v changed, want [p q r]", got)
	}

	f3 := s.Facts()
	for i := range factsLog + 5 { // a new generation each: requests count exactly below 100
		s.Record(rec(c.now(), "main", fmt.Sprint("s", i%3), 1, 1))
	}
	if _, ok := s.Facts().ChangedSince(f3.Gen); ok {
		t.Errorf("%d generations later, ChangedSince still answers with a log of %d", s.Facts().Gen-f3.Gen, factsLog)
	}
	recent := s.Facts()
	s.Record(rec(c.now(), "main", "s1", 1, 1))
	if got := since(recent); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("after s1's answer: %v", got)
	}
}
