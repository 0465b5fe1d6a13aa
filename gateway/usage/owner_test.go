package usage

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/policy"
)

// TestStoreOwners: main and work each have their own "anthropic:default"
// (two credentials); cron uses main's. Stored rows, running totals and
// usage facts keep the two credentials apart, and each agent's requests
// apart from the credential's owner.
func TestStoreOwners(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "usage.db"), Options{FlushInterval: -1, Now: func() time.Time { return t0 }, Prices: testPrices})
	const id = "anthropic:default"
	one := func(agent, owner string, out int64) Record {
		return Record{Time: t0, Agent: agent, Owner: owner, Provider: "anthropic", Profile: id, Model: "m", Status: 200, Usage: Usage{Output: out}}
	}
	for _, r := range []Record{one("main", "main", 1000), one("main", "main", 1000), one("cron", "main", 500), one("work", "work", 7)} {
		s.Record(r)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Totals(context.Background(), Query{Since: t0})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Key != id || rows[0].Owner != "main" || rows[0].Requests != 3 || rows[0].Output != 2500 ||
		rows[1].Key != id || rows[1].Owner != "work" || rows[1].Requests != 1 || rows[1].Output != 7 {
		t.Errorf("by profile: %+v, want main's %s (3 requests, 2500 out) and work's (1, 7)", rows, id)
	}
	for by, want := range map[string]map[string]int64{
		"owner": {"main": 3, "work": 1},
		"agent": {"main": 2, "cron": 1, "work": 1},
	} {
		rows, err := s.Totals(context.Background(), Query{Since: t0, By: by})
		got := map[string]int64{}
		for _, r := range rows {
			if r.Owner != "" {
				t.Errorf("by %s: row %+v names an owner", by, r)
			}
			got[r.Key] = r.Requests
		}
		if err != nil || len(got) != len(want) || got["main"] != want["main"] || got["work"] != want["work"] || got["cron"] != want["cron"] {
			t.Errorf("by %s: %v %v, want %v", by, got, err, want)
		}
	}
	if work := total(t, s, Query{Since: t0, Agent: "work"}); work.Requests != 1 || work.Output != 7 {
		t.Errorf("agent work's requests: %+v", work)
	}
	spent := s.Spent()
	if len(spent) != 2 || spent[0].Owner != "main" || spent[0].Requests != 3 || spent[1].Owner != "work" || spent[1].Requests != 1 {
		t.Errorf("running totals: %+v", spent)
	}
	f := s.Facts()
	for name, c := range map[string]struct {
		got  *policy.UsageFacts
		want policy.UsageTotals
	}{
		"main's key": {f.Profile("main", id), policy.UsageTotals{Requests: 3, Tokens: 2500, Output: 2500, Cost: 0.02}},
		"work's key": {f.Profile("work", id), policy.UsageTotals{Requests: 1, Tokens: 7, Output: 7}},
		"no one's":   {f.Profile("cron", id), policy.UsageTotals{}},
		"agent main": {f.Agent("main"), policy.UsageTotals{Requests: 2, Tokens: 2000, Output: 2000, Cost: 0.02}},
		"agent cron": {f.Agent("cron"), policy.UsageTotals{Requests: 1, Tokens: 500, Output: 500}},
	} {
		if c.got.H1 != c.want {
			t.Errorf("%s: 1h %+v, want %+v", name, c.got.H1, c.want)
		}
	}
}

// oldLayout is the schema of a usage.db written before usage rows named
// the credential's owner (and before limits were kept per owner), as
// that gateway created it.
const oldLayout = `
CREATE TABLE usage (
	bucket      INTEGER NOT NULL,
	agent       TEXT NOT NULL,
	provider    TEXT NOT NULL,
	profile     TEXT NOT NULL,
	model       TEXT NOT NULL,
	client      TEXT NOT NULL,
	requests    INTEGER NOT NULL DEFAULT 0,
	errors      INTEGER NOT NULL DEFAULT 0,
	input       INTEGER NOT NULL DEFAULT 0,
	output      INTEGER NOT NULL DEFAULT 0,
	cache_read  INTEGER NOT NULL DEFAULT 0,
	cache_write INTEGER NOT NULL DEFAULT 0,
	cost_micros INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (bucket, agent, provider, profile, model, client)
) WITHOUT ROWID;
CREATE TABLE limits (
	provider TEXT NOT NULL,
	profile  TEXT NOT NULL,
	model    TEXT NOT NULL,
	at       INTEGER NOT NULL,
	status   TEXT NOT NULL,
	reset_at INTEGER NOT NULL,
	windows  TEXT NOT NULL,
	PRIMARY KEY (provider, profile, model)
) WITHOUT ROWID;
CREATE TABLE usage_hours (
	hour        INTEGER NOT NULL,
	agent       TEXT NOT NULL,
	profile     TEXT NOT NULL,
	requests    INTEGER NOT NULL DEFAULT 0,
	input       INTEGER NOT NULL DEFAULT 0,
	output      INTEGER NOT NULL DEFAULT 0,
	cache_read  INTEGER NOT NULL DEFAULT 0,
	cache_write INTEGER NOT NULL DEFAULT 0,
	cost_micros INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (hour, agent, profile)
) WITHOUT ROWID;
`

// writeOldStore writes a usage.db in the old layout at path: main's and
// work's requests on "anthropic:default" (each agent has its own), ops's
// on it too (ops has none: main's), main's on an environment key, 3 days
// and 30 minutes before t0, with the hourly summary filled like the old
// gateway did.
func writeOldStore(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(oldLayout); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int64{t0.Add(-3 * 24 * time.Hour).Unix(), t0.Add(-30 * time.Minute).Unix()} {
		for _, r := range []struct {
			agent, profile    string
			requests, output  int64
			costMicros, input int64
		}{
			{"main", "anthropic:default", 3, 3000, 30000, 0},
			{"work", "anthropic:default", 1, 10, 100, 0},
			{"ops", "anthropic:default", 2, 200, 2000, 0},
			{"main", "env:ANTHROPIC_API_KEY", 1, 0, 0, 5},
		} {
			if _, err := db.Exec(`INSERT INTO usage (bucket, agent, provider, profile, model, client, requests, input, output, cost_micros)
				VALUES (?, ?, 'anthropic', ?, 'm', 'claude-code', ?, ?, ?, ?)`, at, r.agent, r.profile, r.requests, r.input, r.output, r.costMicros); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.Exec(`INSERT INTO usage_hours SELECT bucket - bucket % 3600, agent, profile, sum(requests), sum(input), sum(output),
		sum(cache_read), sum(cache_write), sum(cost_micros) FROM usage GROUP BY 1, 2, 3`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO limits VALUES ('anthropic', 'anthropic:default', 'm', 1, 'allowed', 0, '[]')`); err != nil {
		t.Fatal(err)
	}
}

// oldOwner is who holds each id for each agent in writeOldStore's world.
func oldOwner(agent, profile string) string {
	switch {
	case profile == "env:ANTHROPIC_API_KEY":
		return ""
	case agent == "ops":
		return "main"
	}
	return agent
}

// TestStoreMigratesOwner: a usage.db written before rows named the
// credential's owner opens with every row kept, each given the owner
// Options.Owner names; the hourly summary is rebuilt with the owners
// (the 3-day-old answers are read from it), so the usage facts tell
// main's key from work's. Two stores opening the old file at once
// migrate it once.
func TestStoreMigratesOwner(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	writeOldStore(t, path)
	opts := Options{FlushInterval: -1, Now: func() time.Time { return t0 }, Owner: oldOwner}
	var wg sync.WaitGroup
	stores := make([]*Store, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(path, opts) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	s := stores[0]
	rows, err := s.Totals(context.Background(), Query{Since: t0.Add(-4 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]Row{}
	for _, r := range rows {
		got[[2]string{r.Owner, r.Key}] = r
	}
	want := map[[2]string]int64{
		{"main", "anthropic:default"}: 10, // main's 3 and ops's 2, twice
		{"work", "anthropic:default"}: 2,
		{"", "env:ANTHROPIC_API_KEY"}: 2,
	}
	if len(got) != len(want) {
		t.Errorf("after the migration, by profile: %+v, want %v", rows, want)
	}
	for k, n := range want {
		if got[k].Requests != n {
			t.Errorf("%q of %q: %+v, want %d requests", k[1], k[0], got[k], n)
		}
	}
	if all := total(t, s, Query{Since: t0.Add(-4 * 24 * time.Hour)}); all.Requests != 14 || all.Output != 6420 || all.Input != 10 {
		t.Errorf("every row kept: %+v, want 14 requests, 6420 output and 10 input tokens", all)
	}
	if ops := total(t, s, Query{Since: t0.Add(-4 * 24 * time.Hour), Agent: "ops"}); ops.Requests != 4 {
		t.Errorf("agent ops's requests: %+v", ops)
	}
	for _, s := range stores {
		f := s.Facts()
		if d30, h1 := f.Profile("main", "anthropic:default").D30, f.Profile("main", "anthropic:default").H1; d30.Requests != 10 ||
			d30.Cost != 0.06 || h1.Requests != 5 {
			t.Errorf("main's key: 30d %+v, 1h %+v, want 10 and 5 requests, $0.06", d30, h1)
		}
		if d30 := f.Profile("work", "anthropic:default").D30; d30.Requests != 2 || d30.Output != 20 {
			t.Errorf("work's key: 30d %+v", d30)
		}
		if d30 := f.Agent("ops").D30; d30.Requests != 4 || d30.Output != 400 {
			t.Errorf("agent ops: 30d %+v", d30)
		}
	}
	var hours int64
	if err := s.db.QueryRow(`SELECT sum(requests) FROM usage_hours WHERE owner = 'main' AND profile = 'anthropic:default'`).Scan(&hours); err != nil ||
		hours != 10 {
		t.Errorf("usage_hours: main's key %d requests (%v), want 10", hours, err)
	}
	// The migrated store records and adds like a new one.
	s.Record(Record{Time: t0, Agent: "work", Owner: "work", Provider: "anthropic", Profile: "anthropic:default", Model: "m", Client: "claude-code", Status: 200})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := total(t, s, Query{Since: t0.Add(-time.Hour), Agent: "work"}); got.Requests != 2 {
		t.Errorf("work's last hour after one more: %+v, want 2", got)
	}
}

// TestStoreMigratesOwnerWithoutResolver: without Options.Owner each old
// row is taken as its agent's own credential; nothing is lost.
func TestStoreMigratesOwnerWithoutResolver(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "usage.db")
	writeOldStore(t, path)
	s := openStore(t, path, Options{FlushInterval: -1, Now: func() time.Time { return t0 }})
	rows, err := s.Totals(context.Background(), Query{Since: t0.Add(-time.Hour), By: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.Key] = r.Requests
	}
	if len(got) != 3 || got["main"] != 4 || got["work"] != 1 || got["ops"] != 2 {
		t.Errorf("by owner: %v", got)
	}
}
