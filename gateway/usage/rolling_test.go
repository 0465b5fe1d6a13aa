package usage

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/policy"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// price is $1 per million input tokens and $10 per million output
// tokens: 1000 output tokens cost 10000 micro-dollars, a cent.
var testPrices = Prices{"m": {Input: 1, Output: 10}}

// rec is an answer agent asked for on main's profile (cron uses main's).
func rec(at time.Time, agent, profile string, in, out int64) Record {
	return Record{Time: at, Agent: agent, Owner: "main", Provider: "anthropic", Profile: profile, Model: "m", Status: 200, Usage: Usage{Input: in, Output: out}}
}

// TestUsageFactsWindows: answers recorded at different ages land in the
// windows that cover them, quantized; reopening the store seeds the same
// facts from the database; when the minute turns, old answers leave the
// windows.
func TestUsageFactsWindows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	c := &clock{t: t0.Add(30 * time.Second)}
	s, err := Open(path, Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Facts(); f.Profile("main", "p") != zeroUsage || f.Agent("main") != zeroUsage {
		t.Fatalf("an empty store's facts are not zero: %+v", f)
	}
	for _, r := range []Record{
		rec(t0, "main", "p", 10, 1000),                  // now: every window; $0.01001
		rec(t0.Add(-59*time.Minute), "main", "p", 5, 0), // still in the last hour
		rec(t0.Add(-2*time.Hour), "cron", "p", 100, 0),  // 5h, 24h, 30d
		rec(t0.Add(-6*time.Hour), "main", "p", 1000, 0), // 24h, 30d
		rec(t0.Add(-3*24*time.Hour), "main", "p", 12345, 0),
		rec(t0.Add(-40*24*time.Hour), "main", "p", 99999, 0), // beyond 30 days
		rec(t0, "main", "q", 0, 2_000_000),                   // $20
	} {
		s.Record(r)
	}
	want := policy.UsageFacts{
		H1:  policy.UsageTotals{Requests: 2, Tokens: 1000, Input: 15, Output: 1000, Cost: 0.01},
		H5:  policy.UsageTotals{Requests: 3, Tokens: 1100, Input: 110, Output: 1000, Cost: 0.01},
		H24: policy.UsageTotals{Requests: 4, Tokens: 2100, Input: 1100, Output: 1000, Cost: 0.01},
		D30: policy.UsageTotals{Requests: 5, Tokens: 14000, Input: 13000, Output: 1000, Cost: 0.02},
	}
	check := func(when string, s *Store) {
		t.Helper()
		f := s.Facts()
		if got := *f.Profile("main", "p"); got != want {
			t.Errorf("%s: profile p\n got %+v\nwant %+v", when, got, want)
		}
		if got := f.Agent("cron").H5; got.Requests != 1 || got.Input != 100 {
			t.Errorf("%s: agent cron's 5h: %+v", when, got)
		}
		if got := f.Profile("main", "q").H24.Cost; got != 20 {
			t.Errorf("%s: profile q's 24h cost %v, want 20", when, got)
		}
		if got := f.Agent("main").H1; got.Requests != 3 || got.Output != 2_000_000 || got.Cost != 20 {
			t.Errorf("%s: agent main's 1h: %+v", when, got)
		}
	}
	check("recorded", s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	check("reopened", s)

	// 58 minutes on, the answer from 59 minutes before t0 left the hour.
	c.set(t0.Add(58 * time.Minute))
	gen := s.Facts().Gen
	if err := s.tickRolls(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := s.Facts()
	if got := f.Profile("main", "p").H1; got.Requests != 1 || got.Input != 10 {
		t.Errorf("an hour on, p's 1h is %+v, want the one answer at t0", got)
	}
	if got := f.Agent("main").H1; got.Requests != 2 || got.Input != 10 {
		t.Errorf("an hour on, agent main's 1h is %+v, want the answers at t0", got)
	}
	if f.Gen == gen {
		t.Error("facts changed without a new generation")
	}
	// 31 days on, nothing is left: every total is zero.
	c.set(t0.Add(31 * 24 * time.Hour))
	if err := s.tickRolls(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Facts().Profile("main", "p"); *got != (policy.UsageFacts{}) {
		t.Errorf("31 days on, p's facts are %+v", got)
	}
}

// TestUsageFactsPublishOnChange: an answer that moves no quantized total
// publishes nothing (the facts' generation stays, so cached decisions
// and facts keep serving); one that crosses a step publishes.
func TestUsageFactsPublishOnChange(t *testing.T) {
	t.Parallel()
	c := &clock{t: t0}
	s := openStore(t, filepath.Join(t.TempDir(), "usage.db"), Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	for range 150 {
		s.Record(rec(t0, "main", "p", 1, 0))
	}
	gen := s.Facts().Gen
	if got := s.Facts().Profile("main", "p").H1.Requests; got != 150 {
		t.Fatalf("150 requests read %d", got)
	}
	for i := range 9 { // 151..159 requests: still "150"
		s.Record(rec(t0, "main", "p", 0, 0))
		if g := s.Facts().Gen; g != gen {
			t.Fatalf("request %d moved no quantized total but published generation %d (was %d)", 151+i, g, gen)
		}
	}
	s.Record(rec(t0, "main", "p", 0, 0)) // 160
	if f := s.Facts(); f.Gen == gen || f.Profile("main", "p").H1.Requests != 160 {
		t.Errorf("the 160th request: gen %d (was %d), requests %d", f.Gen, gen, f.Profile("main", "p").H1.Requests)
	}
}

// TestUsageFactsTwoGateways: two stores on one file (two gateways
// sharing a state dir) each see the other's spend after a flush tick,
// and their own exactly once, however often they tick.
func TestUsageFactsTwoGateways(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	c := &clock{t: t0.Add(10 * time.Second)}
	a := openStore(t, path, Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	b := openStore(t, path, Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	tick := func(s *Store) {
		t.Helper()
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.tickRolls(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	a.Record(rec(t0, "main", "key", 0, 1_000_000)) // $10
	b.Record(rec(t0, "cron", "key", 0, 500_000))   // $5
	if got := b.Facts().Profile("main", "key").H24.Cost; got != 5 {
		t.Fatalf("b before a tick: %v", got)
	}
	for range 3 {
		tick(a)
		tick(b)
		tick(a)
	}
	// b records more before it flushes: it must count it once.
	b.Record(rec(t0.Add(5*time.Second), "cron", "key", 0, 600_000)) // $6
	tick(a)
	tick(b)
	tick(a)
	tick(b)
	for name, s := range map[string]*Store{"a": a, "b": b} {
		f := s.Facts()
		if got := f.Profile("main", "key").H24; got.Cost != 21 || got.Requests != 3 || got.Output != 2_100_000 {
			t.Errorf("gateway %s sees the key's 24h as %+v, want 3 requests, $21", name, got)
		}
		if got := f.Agent("cron").H1.Cost; got != 11 {
			t.Errorf("gateway %s sees agent cron's 1h cost %v, want 11", name, got)
		}
		if got := f.Agent("main").H1.Cost; got != 10 {
			t.Errorf("gateway %s sees agent main's 1h cost %v, want 10", name, got)
		}
	}
}

func BenchmarkUsageRecord(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "usage.db"), Options{FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := Record{Time: time.Now(), Agent: "main", Provider: "anthropic", Profile: "anthropic:work", Model: "claude-sonnet-4-5", Status: 200,
		Usage: Usage{Input: 1200, Output: 300, CacheRead: 20000}}
	b.ReportAllocs()
	for b.Loop() {
		s.Record(r)
	}
}

// TestUsageFactsFromOldStore: a store written before usage_hours existed
// (the minutes only) gets its hours filled when opened, so the 30-day
// totals count what was recorded before the upgrade, once.
func TestUsageFactsFromOldStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	c := &clock{t: t0}
	s, err := Open(path, Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
	if err != nil {
		t.Fatal(err)
	}
	s.Record(rec(t0.Add(-3*24*time.Hour), "main", "p", 100, 0))
	s.Record(rec(t0.Add(-2*time.Hour), "main", "p", 10, 0))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`DROP TABLE usage_hours`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open must not fill the hours again
		s = openStore(t, path, Options{FlushInterval: -1, Now: c.now, Prices: testPrices})
		if got := s.Facts().Profile("main", "p"); got.D30.Requests != 2 || got.D30.Input != 110 || got.H24.Input != 10 {
			t.Errorf("after the upgrade: %+v", got)
		}
		s.Close()
	}
}
