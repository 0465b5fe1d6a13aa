package usage

import (
	"context"
	"database/sql"
	"fmt"
)

// The SQL side of the rolling windows (rolling.go): reading the usage
// table into them when the store opens (seedRolls), keeping the hourly
// summary table that makes that read cheap (ensureHours, writeHours,
// pruneHours), and, on every flush tick, adding what other gateways
// sharing the file recorded (tickRolls, mergeOthers).

// rollRow is one grouped row of the usage table.
type rollRow struct {
	at                    int64
	agent, owner, profile string
	t                     tot
}

// readRolls sums the usage table since the first bucket of the 30-day
// window, grouped by agent, owner, profile and a bucket as wide as the finest
// series that still covers it (minutes in the last hour, ten minutes in
// the last 24 hours, hours before), so the rows read are bounded by the
// buckets kept, not by the minutes stored.
func (s *Store) readRolls(ctx context.Context, since, tens, minutes int64) ([]rollRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT CASE WHEN bucket >= ?1 THEN bucket WHEN bucket >= ?2 THEN bucket - bucket % 600
		ELSE bucket - bucket % 3600 END AS b, agent, owner, profile,
		sum(requests), sum(input), sum(output), sum(cache_read), sum(cache_write), sum(cost_micros)
		FROM usage WHERE bucket >= ?3 GROUP BY b, agent, owner, profile`, minutes, tens, since)
	return scanRolls(rows, err)
}

// scanRolls reads rows of (bucket, agent, owner, profile, requests, input,
// output, cache_read, cache_write, cost_micros).
func scanRolls(rows *sql.Rows, err error) ([]rollRow, error) {
	if err != nil {
		return nil, fmt.Errorf("usage store: reading the usage facts: %w", err)
	}
	defer rows.Close()
	var out []rollRow
	for rows.Next() {
		var w rollRow
		var c counts
		if err := rows.Scan(&w.at, &w.agent, &w.owner, &w.profile, &c.requests, &c.input, &c.output, &c.cacheRead, &c.cacheWrite, &c.costMicros); err != nil {
			return nil, fmt.Errorf("usage store: reading the usage facts: %w", err)
		}
		w.t = totOf(&c)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage store: reading the usage facts: %w", err)
	}
	return out, nil
}

func (s *Store) dataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("usage store: %w", err)
	}
	return v, nil
}

// usage_hours rolls the usage table up by hour, agent, owner and
// profile, so that opening the store reads at most 720 rows per key
// for the 30-day window instead of every minute of it (216000 minute rows
// took 1.3 s to group). write adds to it in the same transaction as the
// minutes, additively like them; prune drops hours past the retention.
const hoursSchema = `CREATE TABLE IF NOT EXISTS usage_hours (
	hour        INTEGER NOT NULL, -- unix seconds at the start of the hour
	agent       TEXT NOT NULL,
	owner       TEXT NOT NULL DEFAULT '',
	profile     TEXT NOT NULL,
	requests    INTEGER NOT NULL DEFAULT 0,
	input       INTEGER NOT NULL DEFAULT 0,
	output      INTEGER NOT NULL DEFAULT 0,
	cache_read  INTEGER NOT NULL DEFAULT 0,
	cache_write INTEGER NOT NULL DEFAULT 0,
	cost_micros INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (hour, agent, owner, profile)
) WITHOUT ROWID`

// ensureHours creates usage_hours, and fills it from the minutes when
// it is empty while minutes exist (a store written before it existed).
// The CREATE and the fill are one transaction: a second process opening
// the store meanwhile waits, then finds the hours filled.
func (s *Store) ensureHours(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, hoursSchema); err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO usage_hours (hour, agent, owner, profile,
		requests, input, output, cache_read, cache_write, cost_micros)
		SELECT bucket - bucket % 3600, agent, owner, profile, sum(requests), sum(input), sum(output), sum(cache_read), sum(cache_write), sum(cost_micros)
		FROM usage WHERE NOT EXISTS (SELECT 1 FROM usage_hours) GROUP BY 1, 2, 3, 4`); err != nil {
		return fmt.Errorf("usage store: filling usage_hours: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	return nil
}

// writeHours adds pending to usage_hours (write, in its transaction).
func writeHours(tx *sql.Tx, pending map[bucketKey]*counts) error {
	type hk struct {
		hour                  int64
		agent, owner, profile string
	}
	hours := map[hk]*counts{}
	for k, c := range pending {
		h := hk{k.bucket - k.bucket%3600, k.agent, k.owner, k.profile}
		if hours[h] == nil {
			hours[h] = &counts{}
		}
		hours[h].add(c)
	}
	st, err := tx.Prepare(`INSERT INTO usage_hours (hour, agent, owner, profile, requests, input, output, cache_read, cache_write, cost_micros)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, input = input + excluded.input,
		output = output + excluded.output, cache_read = cache_read + excluded.cache_read,
		cache_write = cache_write + excluded.cache_write, cost_micros = cost_micros + excluded.cost_micros`)
	if err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	defer st.Close()
	for h, c := range hours {
		if _, err := st.Exec(h.hour, h.agent, h.owner, h.profile, c.requests, c.input, c.output, c.cacheRead, c.cacheWrite, c.costMicros); err != nil {
			return fmt.Errorf("usage store: %w", err)
		}
	}
	return nil
}

// pruneHours drops the hours that ended before cut (unix s).
func (s *Store) pruneHours(cut int64) error {
	if _, err := s.db.Exec(`DELETE FROM usage_hours WHERE hour < ?`, cut-cut%3600); err != nil {
		return fmt.Errorf("usage store: pruning: %w", err)
	}
	return nil
}

// readHours sums usage_hours over [from, to) by hour, agent, owner and profile.
func (s *Store) readHours(ctx context.Context, from, to int64) ([]rollRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hour, agent, owner, profile, requests, input, output, cache_read, cache_write, cost_micros
		FROM usage_hours WHERE hour >= ? AND hour < ?`, from, to)
	return scanRolls(rows, err)
}

// seedRolls fills the rolling totals from the database (Open): the
// whole hours before the 24-hour window's hour from usage_hours, the
// rest from the minutes.
func (s *Store) seedRolls(ctx context.Context) error {
	now := s.opts.Now()
	r := newRolls(now)
	v, err := s.dataVersion(ctx)
	if err != nil {
		return err
	}
	split := r.keep[1] - r.keep[1]%3600
	rows, err := s.readRolls(ctx, split, r.keep[1], r.keep[0])
	if err != nil {
		return err
	}
	older, err := s.readHours(ctx, r.keep[2], split)
	if err != nil {
		return err
	}
	rows = append(rows, older...)
	for i := range rows {
		r.add(ProfileKey{rows[i].owner, rows[i].profile}, rows[i].agent, rows[i].at, &rows[i].t)
	}
	r.recompute(now.Unix())
	r.publish()
	r.version = v
	s.rolls = r
	return nil
}

// tickRolls runs on the flush tick, after the flush: it adds what other
// gateways wrote to the database since it was last read (when SQLite
// says another connection committed), and moves the windows when the
// minute turned.
func (s *Store) tickRolls(ctx context.Context) error {
	s.flushMu.Lock() // the pending batch must not be half written while it is compared
	defer s.flushMu.Unlock()
	now := s.opts.Now().Unix()
	v, err := s.dataVersion(ctx)
	if err != nil {
		return err
	}
	var rows []rollRow
	s.mu.Lock()
	read := v != s.rolls.version
	since := s.rolls.keep[0]
	s.mu.Unlock()
	if read {
		// The last hour by minute: other gateways write the current
		// minutes (and, for a long stream, a few before).
		if rows, err = s.readRolls(ctx, since, since, since); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rolls
	changed := false
	if read {
		changed = s.mergeOthers(rows)
		r.version = v
	}
	if now-now%60 != r.minute {
		changed = r.recompute(now) || changed
	}
	if changed {
		r.publish()
	}
	return nil
}

// mergeOthers adds to the rolling totals what the database holds beyond
// what this store recorded: for each minute of the last hour, the
// database's totals minus (what this store counted − what it has not
// written yet). s.mu is held.
func (s *Store) mergeOthers(rows []rollRow) bool {
	dbP, dbA := minutes[ProfileKey]{}, minutes[string]{}
	for i := range rows {
		w := &rows[i]
		if w.profile != "" {
			dbP.add(ProfileKey{w.owner, w.profile}, w.at, &w.t)
		}
		if w.agent != "" {
			dbA.add(w.agent, w.at, &w.t)
		}
	}
	pendP, pendA := minutes[ProfileKey]{}, minutes[string]{}
	for k, c := range s.pending {
		if k.bucket < s.rolls.keep[0] {
			continue
		}
		t := totOf(c)
		pendP.add(ProfileKey{k.owner, k.profile}, k.bucket, &t)
		pendA.add(k.agent, k.bucket, &t)
	}
	changedP := mergeInto(s.rolls, s.rolls.profiles, dbP, pendP)
	return mergeInto(s.rolls, s.rolls.agents, dbA, pendA) || changedP
}

// minuteKey is a key's minute bucket.
type minuteKey[K comparable] struct {
	key K
	at  int64
}

// minutes are totals per key and minute.
type minutes[K comparable] map[minuteKey[K]]tot

func (m minutes[K]) add(key K, at int64, t *tot) {
	sum := m[minuteKey[K]{key, at}]
	sum.add(t)
	m[minuteKey[K]{key, at}] = sum
}

// mergeInto adds to m's rolls, per key and minute, what db holds beyond
// what they counted and wrote (their minute minus pend); it reports
// whether a quantized total changed.
func mergeInto[K comparable](r *rolls, m map[K]*roll, db, pend minutes[K]) bool {
	changed := false
	for k, dbt := range db {
		var mine tot
		if x := m[k.key]; x != nil {
			mine = minuteOf(x, k.at)
		}
		others := dbt.minus(mine.minus(pend[k]))
		if others == (tot{}) {
			continue
		}
		if r.addTo(rollOf(m, k.key), k.at, &others) {
			changed = true
		}
	}
	return changed
}

// minuteOf is x's minute bucket at.
func minuteOf(x *roll, at int64) tot {
	for i := len(x.slots[0]) - 1; i >= 0; i-- {
		if x.slots[0][i].at == at {
			return x.slots[0][i].t
		}
	}
	return tot{}
}
