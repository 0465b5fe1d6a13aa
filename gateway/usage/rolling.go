package usage

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/policy"
)

// The policy's usage facts (input.profiles[i].usage, input.agent.usage):
// per credential (its owner and profile id: what every agent's requests
// on it spent, since they spend its quota) and per agent (what its
// requests spent, on any credential), the totals over the last hour, 5
// hours, 24 hours and 30 days, kept in memory so that a decision never
// waits for SQL. Each recorded answer adds to them (Record, under the
// store's lock: a few additions and comparisons); they are seeded from the
// database when the store opens; and on every flush tick the store asks
// SQLite whether another connection wrote (PRAGMA data_version), and if
// one did, adds what the other gateways sharing the file recorded over
// the last hour. The windows' old ends are dropped when the minute turns.
//
// Totals reach the policy quantized (policy.QuantizeCount, QuantizeCost)
// and a new Facts is published only when a quantized total changes, so
// the decision cache and the gateway's facts memo see a new generation
// rarely, not on every answer.

// series are bucket widths (seconds) and how many buckets each keeps:
// minutes for the last hour, ten minutes for 5 and 24 hours, hours for
// 30 days.
var series = [3]struct{ width, keep int64 }{{60, 60}, {600, 144}, {3600, 720}}

// windows are the policy's windows: which series each sums and over how
// many of its buckets (the current one included).
var windows = [4]struct {
	series int
	n      int64
}{{0, 60}, {1, 30}, {1, 144}, {2, 720}}

// tot are running totals (tokens is the sum of the four kinds).
type tot struct {
	requests, tokens, input, output, cacheRead, cacheWrite, costMicros int64
}

func (t *tot) add(o *tot) {
	t.requests += o.requests
	t.tokens += o.tokens
	t.input += o.input
	t.output += o.output
	t.cacheRead += o.cacheRead
	t.cacheWrite += o.cacheWrite
	t.costMicros += o.costMicros
}

// minus is t - o, every field at least 0.
func (t tot) minus(o tot) tot {
	return tot{max(t.requests-o.requests, 0), max(t.tokens-o.tokens, 0), max(t.input-o.input, 0),
		max(t.output-o.output, 0), max(t.cacheRead-o.cacheRead, 0), max(t.cacheWrite-o.cacheWrite, 0),
		max(t.costMicros-o.costMicros, 0)}
}

func totOf(c *counts) tot {
	return tot{c.requests, c.input + c.output + c.cacheRead + c.cacheWrite, c.input, c.output, c.cacheRead, c.cacheWrite, c.costMicros}
}

// reaches says whether any of t's totals is at or past the one in o.
func (t *tot) reaches(o *tot) bool {
	return t.requests >= o.requests || t.tokens >= o.tokens || t.input >= o.input || t.output >= o.output ||
		t.cacheRead >= o.cacheRead || t.cacheWrite >= o.cacheWrite || t.costMicros >= o.costMicros
}

// quantized is what the policy sees of t.
func (t *tot) quantized() policy.UsageTotals {
	return policy.UsageTotals{Requests: policy.QuantizeCount(t.requests), Tokens: policy.QuantizeCount(t.tokens),
		Input: policy.QuantizeCount(t.input), Output: policy.QuantizeCount(t.output),
		CacheRead: policy.QuantizeCount(t.cacheRead), CacheWrite: policy.QuantizeCount(t.cacheWrite),
		Cost: policy.QuantizeCost(t.costMicros)}
}

// next is the smallest totals at which t's quantized facts change: t
// only grows between recomputes, so Record compares with it instead of
// quantizing.
func (t *tot) next() tot {
	return tot{nextCount(t.requests), nextCount(t.tokens), nextCount(t.input), nextCount(t.output),
		nextCount(t.cacheRead), nextCount(t.cacheWrite), nextCount(t.costMicros/10_000) * 10_000}
}

// nextCount is the smallest count above n whose QuantizeCount differs.
func nextCount(n int64) int64 {
	step := int64(1)
	for m := n; m >= 100; m /= 10 {
		step *= 10
	}
	return policy.QuantizeCount(n) + step
}

type slot struct {
	at int64 // bucket start, unix seconds
	t  tot
}

// roll is one credential's or agent's buckets and window totals.
type roll struct {
	slots [len(series)][]slot // sorted by at
	sum   [len(windows)]tot
	next  [len(windows)]tot // sum reaching one of these changes facts
	facts *policy.UsageFacts
}

// ProfileKey names a credential: the agent whose store holds it (""
// for a key from the environment or the config) and its profile id. An
// agent's own profile and main's with the same id are two credentials;
// an agent using main's profile spends main's.
type ProfileKey struct{ Owner, Profile string }

// Facts are the quantized usage totals at one moment, by credential and
// by agent id; Gen changes whenever one of them does. A Facts never
// changes once published.
type Facts struct {
	Gen      uint64
	Profiles map[ProfileKey]*policy.UsageFacts
	Agents   map[string]*policy.UsageFacts
	// log says which profiles each of the last generations changed
	// (oldest first, the last Gen's): see ChangedSince.
	log []factsChange
}

// factsChange is the profile ids whose facts a generation changed (in
// any owner's store).
type factsChange struct {
	gen uint64
	ids []string
}

// factsLog is how many generations back ChangedSince can answer.
const factsLog = 64

// ChangedSince returns the ids of the profiles whose facts changed after
// generation old up to f's (an id may repeat; the owner is left out, so
// it may name another agent's profile of that id too), and false when f
// cannot say (old is beyond its log, or not one of its predecessors').
// The gateway's facts memo rebuilds just those profiles' facts.
func (f *Facts) ChangedSince(old uint64) ([]string, bool) {
	g := f.Generation()
	switch {
	case old == g:
		return nil, true
	case old > g || len(f.log) == 0 || f.log[0].gen > old+1:
		return nil, false
	}
	var ids []string
	for _, c := range f.log {
		if c.gen > old {
			ids = append(ids, c.ids...)
		}
	}
	return ids, true
}

// zeroUsage is the facts of a profile or agent with nothing recorded.
var zeroUsage = &policy.UsageFacts{}

// Generation is f's generation (0 for nil).
func (f *Facts) Generation() uint64 {
	if f == nil {
		return 0
	}
	return f.Gen
}

// Profile is the usage facts of owner's profile id (what every agent
// spent on that credential): nil when f is nil (no usage kept), all zero
// when nothing was recorded for it.
func (f *Facts) Profile(owner, id string) *policy.UsageFacts {
	if f == nil {
		return nil
	}
	return orZero(f.Profiles[ProfileKey{owner, id}])
}

// Agent is the usage facts of an agent's requests, on whatever
// credential served them, like Profile.
func (f *Facts) Agent(id string) *policy.UsageFacts {
	if f == nil {
		return nil
	}
	return orZero(f.Agents[id])
}

func orZero(u *policy.UsageFacts) *policy.UsageFacts {
	if u == nil {
		return zeroUsage
	}
	return u
}

// rolls are the store's rolling totals. Its maps are guarded by the
// store's mu; pub is read without a lock.
type rolls struct {
	minute   int64                // the minute (unix s) starts was computed for
	starts   [len(windows)]int64  // each window's first bucket
	keep     [len(series)]int64   // each series' first bucket
	profiles map[ProfileKey]*roll // by credential
	agents   map[string]*roll     // by agent id
	pub      atomic.Pointer[Facts]
	version  int64 // PRAGMA data_version when the database was last read
}

func newRolls(now time.Time) *rolls {
	r := &rolls{profiles: map[ProfileKey]*roll{}, agents: map[string]*roll{}}
	r.setClock(now.Unix())
	r.pub.Store(&Facts{Profiles: map[ProfileKey]*policy.UsageFacts{}, Agents: map[string]*policy.UsageFacts{}})
	return r
}

// setClock moves the windows' starts to now (unix s).
func (r *rolls) setClock(now int64) {
	r.minute = now - now%60
	for i, s := range series {
		r.keep[i] = now - now%s.width - (s.keep-1)*s.width
	}
	for i, w := range windows {
		s := series[w.series]
		r.starts[i] = now - now%s.width - (w.n-1)*s.width
	}
}

func rollOf[K comparable](m map[K]*roll, key K) *roll {
	x := m[key]
	if x == nil {
		x = &roll{facts: zeroUsage}
		for i := range x.next {
			x.next[i] = x.sum[i].next()
		}
		m[key] = x
	}
	return x
}

// add adds t at the time at (unix s) to a credential's and an agent's
// totals and reports whether a quantized total changed.
func (r *rolls) add(cred ProfileKey, agent string, at int64, t *tot) bool {
	changed := false
	if cred.Profile != "" {
		changed = r.addTo(rollOf(r.profiles, cred), at, t)
	}
	if agent != "" {
		changed = r.addTo(rollOf(r.agents, agent), at, t) || changed
	}
	return changed
}

func (r *rolls) addTo(x *roll, at int64, t *tot) bool {
	for i, s := range series {
		if at >= r.keep[i] {
			x.slots[i] = addSlot(x.slots[i], at-at%s.width, t)
		}
	}
	reached := false
	for i := range windows {
		if at >= r.starts[i] {
			x.sum[i].add(t)
			reached = reached || x.sum[i].reaches(&x.next[i])
		}
	}
	return reached && x.requantize()
}

// addSlot adds t to the slot for at, inserting it in order (answers
// arrive about in time order; a long stream's comes late).
func addSlot(ss []slot, at int64, t *tot) []slot {
	i := len(ss)
	for i > 0 && ss[i-1].at > at {
		i--
	}
	if i > 0 && ss[i-1].at == at {
		ss[i-1].t.add(t)
		return ss
	}
	ss = append(ss, slot{})
	copy(ss[i+1:], ss[i:])
	ss[i] = slot{at: at, t: *t}
	return ss
}

// requantize sets x's facts from its sums (a new pointer if they
// differ) and the next thresholds; it reports whether the facts changed.
func (x *roll) requantize() bool {
	f := policy.UsageFacts{H1: x.sum[0].quantized(), H5: x.sum[1].quantized(), H24: x.sum[2].quantized(), D30: x.sum[3].quantized()}
	for i := range x.next {
		x.next[i] = x.sum[i].next()
	}
	if f == *x.facts {
		return false
	}
	x.facts = &f
	return true
}

// recompute moves the windows to now: it drops the buckets that left
// them and sums each window again. It reports whether a quantized total
// changed.
func (r *rolls) recompute(now int64) bool {
	r.setClock(now)
	profiles := recomputeAll(r, r.profiles)
	agents := recomputeAll(r, r.agents) // both move, whatever the first says
	return profiles || agents
}

// recomputeAll moves every roll of m to r's clock, dropping the ones
// left empty; it reports whether a quantized total changed.
func recomputeAll[K comparable](r *rolls, m map[K]*roll) bool {
	changed := false
	for key, x := range m {
		empty := true
		for i := range series {
			j := 0
			for j < len(x.slots[i]) && x.slots[i][j].at < r.keep[i] {
				j++
			}
			x.slots[i] = append(x.slots[i][:0], x.slots[i][j:]...)
			empty = empty && len(x.slots[i]) == 0
		}
		for i, w := range windows {
			x.sum[i] = tot{}
			for _, s := range x.slots[w.series] {
				if s.at >= r.starts[i] {
					x.sum[i].add(&s.t)
				}
			}
		}
		changed = x.requantize() || changed
		if empty {
			delete(m, key)
			changed = true
		}
	}
	return changed
}

// publish makes the current facts visible to Facts readers.
func (r *rolls) publish() {
	old := r.pub.Load()
	f := &Facts{Gen: old.Gen + 1, Profiles: make(map[ProfileKey]*policy.UsageFacts, len(r.profiles)),
		Agents: make(map[string]*policy.UsageFacts, len(r.agents))}
	for k, x := range r.profiles {
		f.Profiles[k] = x.facts
	}
	for k, x := range r.agents {
		f.Agents[k] = x.facts
	}
	if maps.Equal(f.Profiles, old.Profiles) && maps.Equal(f.Agents, old.Agents) {
		return
	}
	var ids []string
	for k, u := range f.Profiles {
		if old.Profiles[k] != u {
			ids = append(ids, k.Profile)
		}
	}
	for k := range old.Profiles {
		if _, ok := f.Profiles[k]; !ok {
			ids = append(ids, k.Profile)
		}
	}
	f.log = append(slices.Clip(old.log[max(0, len(old.log)-factsLog+1):]), factsChange{f.Gen, ids})
	r.pub.Store(f)
}

// Facts are the quantized usage totals now (input.profiles[i].usage and
// input.agent.usage). It never blocks and costs one atomic load.
func (s *Store) Facts() *Facts { return s.rolls.pub.Load() }

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
