package usage

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func openStore(t *testing.T, path string, o Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func total(t *testing.T, s *Store, q Query) Row {
	t.Helper()
	rows, err := s.Totals(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var sum Row
	for _, r := range rows {
		sum.Add(r)
	}
	return sum
}

func TestStoreTotals(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "usage.db")
	s := openStore(t, path, Options{FlushInterval: -1, Now: func() time.Time { return t0 }})
	recs := []Record{
		{Time: t0, Agent: "main", Provider: "anthropic", Profile: "anthropic:work", Model: "claude-sonnet-4-5-20250929", Client: "claude-code", Status: 200,
			Usage: Usage{Input: 1000, Output: 2000, CacheRead: 10000, CacheWrite: 100}},
		{Time: t0.Add(30 * time.Second), Agent: "main", Provider: "anthropic", Profile: "anthropic:work", Model: "claude-sonnet-4-5-20250929", Client: "claude-code", Status: 200,
			Usage: Usage{Input: 1, Output: 2}},
		{Time: t0.Add(2 * time.Hour), Agent: "ci", Provider: "openai", Profile: "openai:default", Model: "gpt-5-mini", Client: "codex", Status: 200,
			Usage: Usage{Input: 500, Output: 50}},
		{Time: t0.Add(2 * time.Hour), Agent: "ci", Provider: "openai", Profile: "openai:default", Model: "gpt-5-mini", Status: 429},
		{Time: t0.Add(-48 * time.Hour), Agent: "main", Provider: "openai", Profile: "openai:old", Model: "unpriced-model", Status: 200, Usage: Usage{Output: 7}},
	}
	for _, r := range recs {
		s.Record(r)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	all := total(t, s, Query{Since: t0.Add(-72 * time.Hour)})
	if all.Requests != 5 || all.Errors != 1 || all.Input != 1501 || all.Output != 2059 || all.CacheRead != 10000 || all.CacheWrite != 100 {
		t.Errorf("all: %+v", all)
	}
	// sonnet: 3/15/0.3/3.75 per MTok; gpt-5-mini: 0.25/2.
	wantCost := (1001*3+2002*15+10000*0.3+100*3.75)/1e6 + (500*0.25+50*2)/1e6
	if math.Abs(all.CostUSD-wantCost) > 2e-6 {
		t.Errorf("cost %v, want %v", all.CostUSD, wantCost)
	}
	byProfile, _ := s.Totals(context.Background(), Query{Since: t0})
	if len(byProfile) != 2 || byProfile[0].Key != "anthropic:work" || byProfile[0].Provider != "anthropic" || byProfile[0].Requests != 2 ||
		byProfile[1].Key != "openai:default" || byProfile[1].Requests != 2 {
		t.Errorf("by profile since t0: %+v", byProfile)
	}
	for by, want := range map[string]string{"model": "claude-sonnet-4-5-20250929", "client": "claude-code", "agent": "main", "provider": "anthropic"} {
		rows, err := s.Totals(context.Background(), Query{Since: t0, By: by})
		groups := 2
		if by == "client" {
			groups = 3 // the 429 named no client
		}
		if err != nil || len(rows) != groups || rows[0].Key != want {
			t.Errorf("by %s: %+v %v", by, rows, err)
		}
	}
	if ci := total(t, s, Query{Since: t0, Agent: "ci"}); ci.Requests != 2 || ci.Input != 500 {
		t.Errorf("agent ci: %+v", ci)
	}
	if _, err := s.Totals(context.Background(), Query{By: "secret"}); err == nil || !strings.Contains(err.Error(), `"secret"`) {
		t.Errorf("by secret: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v", fi.Mode(), err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v %v, want 0600", filepath.Base(f), fi.Mode(), err)
		}
	}
}

func TestStoreRetention(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	s, err := Open(path, Options{FlushInterval: -1, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	s.Record(Record{Time: t0.Add(-36 * 24 * time.Hour), Profile: "p", Usage: Usage{Input: 1}})
	s.Record(Record{Time: t0.Add(-34 * 24 * time.Hour), Profile: "p", Usage: Usage{Input: 2}})
	s.Close()
	s = openStore(t, path, Options{FlushInterval: -1, Now: func() time.Time { return t0 }})
	if got := total(t, s, Query{}); got.Input != 2 {
		t.Errorf("after reopening: %+v, want only the bucket within 35 days", got)
	}
}

func TestStoreLimits(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "usage.db"), Options{FlushInterval: -1})
	w := Window{Name: "tokens", Limit: 100, Remaining: 40, Utilization: 0.6, ResetAt: t0.Add(time.Minute)}
	s.Limits(Limits{Time: t0.Add(time.Second), Provider: "anthropic", Profile: "anthropic:a", Model: "m", Status: "allowed", Windows: []Window{w}})
	s.Limits(Limits{Time: t0, Provider: "anthropic", Profile: "anthropic:a", Model: "m", Status: "rejected"}) // older: ignored
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// An older answer flushed later (another gateway's) does not win either.
	s.Limits(Limits{Time: t0, Provider: "anthropic", Profile: "anthropic:a", Model: "m", Status: "rejected"})
	s.Limits(Limits{Time: t0, Provider: "openai", Profile: "openai:b", Status: "rejected", ResetAt: t0.Add(time.Hour)})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := s.LatestLimits(context.Background())
	if err != nil || len(got) != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	if a := got[0]; a.Profile != "anthropic:a" || a.Status != "allowed" || len(a.Windows) != 1 || a.Windows[0].Remaining != 40 ||
		!a.Windows[0].ResetAt.Equal(w.ResetAt) || !a.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("anthropic:a %+v", a)
	}
	if b := got[1]; b.Status != "rejected" || !b.ResetAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("openai:b %+v", b)
	}
}

// TestStoreLimitsPerOwner: two agents' own profiles with one id are two
// credentials, each with its latest limits; a store written before the
// limits were kept per owner opens with that table dropped (a snapshot
// the next answers write again) and the usage history kept.
func TestStoreLimitsPerOwner(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	old, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	oldSchema := strings.Replace(schema, "PRIMARY KEY (provider, agent, profile, model)", "PRIMARY KEY (provider, profile, model)", 1)
	if oldSchema == schema {
		t.Fatal("the limits table's key changed: update this test")
	}
	for _, q := range []string{oldSchema,
		`INSERT INTO limits VALUES ('openai', 'openai:k', 'm', 'work', 1, 'allowed', 0, '[]')`,
		`INSERT INTO usage (bucket, agent, provider, profile, model, client, requests) VALUES (0, 'main', 'openai', 'openai:k', 'm', '', 7)`} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s := openStore(t, path, Options{FlushInterval: -1, Retention: 1 << 62})
	if got := total(t, s, Query{}).Requests; got != 7 {
		t.Errorf("usage after the migration: %d requests, want 7", got)
	}
	s.Limits(Limits{Time: t0, Agent: "main", Provider: "openai", Profile: "openai:k", Model: "m", Status: "allowed"})
	s.Limits(Limits{Time: t0, Agent: "work", Provider: "openai", Profile: "openai:k", Model: "m", Status: "rejected"})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := s.LatestLimits(context.Background())
	if err != nil || len(got) != 2 || got[0].Agent != "main" || got[0].Status != "allowed" || got[1].Agent != "work" || got[1].Status != "rejected" {
		t.Fatalf("%+v %v", got, err)
	}
	mine := Owned(got, func(string) string { return "main" })
	if len(mine) != 1 || mine[0].Status != "allowed" {
		t.Errorf("main's view: %+v", mine)
	}
	if h := Tightest(mine)["openai:k"]; h != nil && h.Status == "rejected" {
		t.Errorf("main's headroom took work's rejection: %+v", h)
	}
}

// TestStoreTwoWriters: two stores (two gateways) write the same file at
// once, flushing often; every count arrives.
func TestStoreTwoWriters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	const perWriter, goroutines = 2000, 4
	var wg sync.WaitGroup
	for w := range 2 {
		s := openStore(t, path, Options{FlushInterval: time.Millisecond})
		for g := range goroutines {
			wg.Go(func() {
				for i := range perWriter / goroutines {
					s.Record(Record{Time: t0.Add(time.Duration(i) * time.Second), Agent: "main", Profile: fmt.Sprintf("p%d", (i+g)%3),
						Model: "m", Client: fmt.Sprint(w), Status: 200, Usage: Usage{Input: 1, Output: 2}})
				}
			})
		}
		defer func() {
			if err := s.Close(); err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		s := openStoreNoCleanup(t, path)
		defer s.Close()
		if got := total(t, s, Query{}); got.Requests != 2*perWriter || got.Input != 2*perWriter || got.Output != 4*perWriter {
			t.Errorf("totals %+v, want %d requests", got, 2*perWriter)
		}
	})
}

func openStoreNoCleanup(t *testing.T, path string) *Store {
	s, err := Open(path, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crashChildEnv makes the test binary a writer that records one request
// of 1 input token per loop, flushing every 20 ms, and prints after each
// flush how many it had recorded before it; the parent SIGKILLs it.
const crashChildEnv = "OPENSOUL_USAGE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

func crashChild(path string) {
	s, err := Open(path, Options{FlushInterval: -1})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	n := 0
	for last := time.Now(); ; n++ {
		s.Record(Record{Time: time.Now(), Agent: "main", Profile: "p", Model: "m", Status: 200, Usage: Usage{Input: 1}})
		if time.Since(last) >= 20*time.Millisecond {
			if err := s.Flush(); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("flushed", n+1)
			last = time.Now()
		}
	}
}

// TestStoreCrash SIGKILLs a writer mid-run, many times over: the store
// opens afterwards, and holds at least every count flushed before the
// kill and no more than were recorded (what was lost is at most one
// batch interval's).
func TestStoreCrash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	var flushedBefore int64
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var flushed int64
		for lines := 0; lines < 3+round && sc.Scan(); lines++ {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0] != "flushed" {
				t.Fatalf("child: %s", sc.Text())
			}
			flushed, _ = strconv.ParseInt(f[1], 10, 64)
		}
		cmd.Process.Signal(syscall.SIGKILL) // mid-loop, perhaps mid-transaction
		cmd.Wait()
		if flushed == 0 {
			t.Fatal("the child flushed nothing")
		}
		s, err := Open(path, Options{FlushInterval: -1})
		if err != nil {
			t.Fatalf("round %d: reopening after the kill: %v", round, err)
		}
		var check string
		if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Errorf("round %d: integrity_check %q %v", round, check, err)
		}
		got := total(t, s, Query{}).Requests - flushedBefore
		s.Close()
		if got < flushed {
			t.Fatalf("round %d: %d requests stored, but %d were flushed before the kill", round, got, flushed)
		}
		// At most what it recorded: one flush interval later than the last
		// report is far below this bound, but the child cannot report past
		// its kill.
		t.Logf("round %d: flushed %d before the kill, stored %d", round, flushed, got)
		flushedBefore += got
	}
}

// TestStoreRunningTotals: Spent and Latest (what /metrics reads) add up
// everything recorded since Open, flushed or not.
func TestStoreRunningTotals(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "usage.db"), Options{FlushInterval: -1})
	s.Record(Record{Time: t0, Provider: "anthropic", Profile: "a", Model: "claude-haiku-4-5", Status: 200, Usage: Usage{Input: 1_000_000}})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Record(Record{Time: t0, Provider: "anthropic", Profile: "a", Model: "claude-haiku-4-5", Status: 429})
	s.Record(Record{Time: t0, Provider: "openai", Profile: "b", Model: "m", Status: 200, Usage: Usage{Output: 5}})
	s.Limits(Limits{Time: t0, Provider: "openai", Profile: "b", Status: "warning"})
	s.Limits(Limits{Time: t0.Add(-time.Second), Provider: "openai", Profile: "b", Status: "allowed"})
	got := s.Spent()
	want := []Spent{
		{Provider: "anthropic", Profile: "a", Requests: 2, Errors: 1, Usage: Usage{Input: 1_000_000}, CostMicros: 1_000_000},
		{Provider: "openai", Profile: "b", Requests: 1, Usage: Usage{Output: 5}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Spent\n got %+v\nwant %+v", got, want)
	}
	if l := s.Latest(); len(l) != 1 || l[0].Status != "warning" {
		t.Errorf("Latest %+v", l)
	}
}
