package usage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3"
)

// The usage store is one SQLite database (usage.db in the state dir) in
// WAL mode. Counters are kept in minute buckets per agent (who asked),
// owner (the agent whose store holds the credential that served: two
// agents' own profiles with one id are two credentials), profile, model
// and client; the latest limits per owner, profile and model. The gateway
// never writes on the request path: Record and Limits add to memory,
// and a flusher writes what piled up once per interval in a single
// transaction. Every write adds (INSERT … ON CONFLICT DO UPDATE SET
// n = n + excluded.n), so two gateways sharing the file each add their
// own counts and neither overwrites the other; SQLite's locking with a
// busy timeout serialises them. A crash loses at most what was recorded
// since the last flush: the WAL keeps committed transactions, and a
// torn one is rolled back when the file is next opened.

// Bucket is the width of a usage bucket.
const Bucket = time.Minute

// DefaultRetention is how long buckets are kept.
const DefaultRetention = 35 * 24 * time.Hour

// DefaultFlushInterval is how often recorded usage is written.
const DefaultFlushInterval = time.Second

// Options configure a Store. The zero value is ready to use.
type Options struct {
	Retention     time.Duration // 0: DefaultRetention
	FlushInterval time.Duration // 0: DefaultFlushInterval; < 0: only Flush and Close write
	Prices        Prices        // nil: DefaultPrices (use Prices.WithDefaults to add to them)
	Logger        *slog.Logger  // nil: discard; flush failures are logged once per distinct error
	Now           func() time.Time
	// Owner says, for a store written before usage rows had an owner,
	// whose credential an agent used under a profile id (see
	// migrateUsage); nil: the agent's own.
	Owner func(agent, profile string) string
}

// usageColumns are the usage table's: the owner is the agent whose store
// holds the credential ("" for a key from the environment or the
// config); agent is the one whose request it served. (The default only
// keeps an older gateway's writes, which name no owner, from failing
// while it shares a migrated file.)
const usageColumns = `(
	bucket      INTEGER NOT NULL, -- unix seconds at the start of the minute
	agent       TEXT NOT NULL,
	owner       TEXT NOT NULL DEFAULT '',
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
	PRIMARY KEY (bucket, agent, owner, provider, profile, model, client)
) WITHOUT ROWID`

const schema = `
CREATE TABLE IF NOT EXISTS usage ` + usageColumns + `;
CREATE TABLE IF NOT EXISTS limits (
	provider TEXT NOT NULL,
	profile  TEXT NOT NULL,
	model    TEXT NOT NULL,
	agent    TEXT NOT NULL,    -- whose store holds the credential ("": environment or config)
	at       INTEGER NOT NULL, -- unix ms of the answer
	status   TEXT NOT NULL,
	reset_at INTEGER NOT NULL, -- unix ms, 0: unknown
	windows  TEXT NOT NULL,    -- JSON array of Window
	PRIMARY KEY (provider, agent, profile, model)
) WITHOUT ROWID;
`

// bucketKey is one bucket row's identity.
type bucketKey struct {
	bucket                                         int64
	agent, owner, provider, profile, model, client string
}

// counts are one bucket row's counters.
type counts struct {
	requests, errors, input, output, cacheRead, cacheWrite, costMicros int64
}

// Store is the usage store. Record and Limits are safe for concurrent
// use and never touch the disk; Flush, Totals and LatestLimits do.
type Store struct {
	db     *sql.DB
	opts   Options
	prices Prices
	log    *slog.Logger

	mu      sync.Mutex            // guards the maps below and lastErr
	pending map[bucketKey]*counts // recorded, not yet flushed
	limits  map[[4]string]Limits  // observed, not yet flushed, by provider, agent, profile, model
	running map[[3]string]*counts // since start, by provider, owner and profile (live.go)
	latest  map[[4]string]Limits  // since start (live.go)
	rolls   *rolls                // the policy's usage facts (rolling.go)
	lastErr string

	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// Open opens (creating it 0600 in a 0700 directory) the store at path
// and starts its flusher.
func Open(path string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	// SQLite would create the file with the process umask: create it 0600.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	f.Close()
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
	if err != nil {
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // the flusher and the readers take turns; SQLite has one writer anyway
	if err := migrate(db, opts.Owner); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	// The driver's VFS creates -wal and -shm with the umask's mode; the
	// 0700 directory already keeps them private, and this makes them 0600
	// like every other state file.
	for _, side := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+side, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			db.Close()
			return nil, fmt.Errorf("usage store %s: %w", path, err)
		}
	}
	s := &Store{db: db, opts: opts, prices: opts.Prices, log: opts.Logger,
		pending: map[bucketKey]*counts{}, limits: map[[4]string]Limits{},
		running: map[[3]string]*counts{}, latest: map[[4]string]Limits{}, stop: make(chan struct{}), done: make(chan struct{})}
	if s.prices == nil {
		s.prices = DefaultPrices
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	if s.opts.Retention <= 0 {
		s.opts.Retention = DefaultRetention
	}
	if s.opts.FlushInterval == 0 {
		s.opts.FlushInterval = DefaultFlushInterval
	}
	if err := errors.Join(s.ensureHours(context.Background()), s.prune()); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	if err := s.seedRolls(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage store %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// migrate brings a store written before the credentials of two agents
// with the same profile id were told apart to the current layout, in one
// (immediate) transaction, so a second process opening the file at the
// same time waits and then finds it done: a limits table keyed without
// the agent is dropped (it holds only the latest answer per key, which
// the next answers write again), and a usage table without the owner
// gets it (migrateUsage) with every row kept.
func migrate(db *sql.DB, owner func(agent, profile string) string) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var old int
	err = tx.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'limits'
		AND NOT EXISTS (SELECT 1 FROM pragma_table_info('limits') WHERE name = 'agent' AND pk > 0)`).Scan(&old)
	if err != nil {
		return err
	}
	if old > 0 {
		if _, err := tx.Exec(`DROP TABLE IF EXISTS limits`); err != nil {
			return err
		}
	}
	if err := migrateUsage(tx, owner); err != nil {
		return fmt.Errorf("giving usage rows their owner: %w", err)
	}
	return tx.Commit()
}

// migrateUsage gives a usage table written before rows had an owner its
// owner column, keeping every row. The owner of an old row is owner(its
// agent, its profile): the gateway passes who holds that id for the agent
// in the profile files now (its own profile, else main's it inherits, ""
// for an environment or config key), which is whose credential served
// unless the files changed since; without owner, the agent's own. The
// hourly summary is dropped and filled again from the minutes
// (ensureHours), so it gets the same owners.
func migrateUsage(tx *sql.Tx, owner func(agent, profile string) string) error {
	var old int
	if err := tx.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'usage'
		AND NOT EXISTS (SELECT 1 FROM pragma_table_info('usage') WHERE name = 'owner')`).Scan(&old); err != nil || old == 0 {
		return err
	}
	type pair struct{ agent, profile string }
	var pairs []pair
	rows, err := tx.Query(`SELECT DISTINCT agent, profile FROM usage`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var p pair
		if err := rows.Scan(&p.agent, &p.profile); err != nil {
			rows.Close()
			return err
		}
		pairs = append(pairs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, q := range []string{
		`CREATE TABLE usage_owned ` + usageColumns,
		`INSERT INTO usage_owned (bucket, agent, owner, provider, profile, model, client,
			requests, errors, input, output, cache_read, cache_write, cost_micros)
			SELECT bucket, agent, agent, provider, profile, model, client,
			requests, errors, input, output, cache_read, cache_write, cost_micros FROM usage`,
	} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	if owner != nil {
		for _, p := range pairs {
			if o := owner(p.agent, p.profile); o != p.agent {
				if _, err := tx.Exec(`UPDATE usage_owned SET owner = ? WHERE agent = ? AND profile = ?`, o, p.agent, p.profile); err != nil {
					return err
				}
			}
		}
	}
	for _, q := range []string{`DROP TABLE usage`, `ALTER TABLE usage_owned RENAME TO usage`, `DROP TABLE IF EXISTS usage_hours`} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

// run flushes every interval, and prunes old buckets once an hour, until
// Close.
func (s *Store) run() {
	defer close(s.done)
	if s.opts.FlushInterval < 0 {
		<-s.stop
		return
	}
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	lastPrune := s.opts.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.logErr(errors.Join(s.Flush(), s.tickRolls(context.Background())))
		if now := s.opts.Now(); now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			s.logErr(s.prune())
		}
	}
}

func (s *Store) logErr(err error) {
	s.mu.Lock()
	text := ""
	if err != nil {
		text = err.Error()
	}
	repeat := text == s.lastErr
	s.lastErr = text
	s.mu.Unlock()
	if err != nil && !repeat {
		s.log.Warn("usage store", "err", err)
	}
}

// Record counts one answer (gateway.UsageSink).
func (s *Store) Record(r Record) {
	k := bucketKey{bucket: r.Time.Truncate(Bucket).Unix(), agent: r.Agent, owner: r.Owner, provider: r.Provider, profile: r.Profile,
		model: r.Model, client: r.Client}
	var cost int64
	if pr, ok := s.prices.For(r.Model); ok {
		cost = pr.CostMicros(r.Usage)
	}
	one := counts{requests: 1, input: r.Input, output: r.Output, cacheRead: r.CacheRead, cacheWrite: r.CacheWrite, costMicros: cost}
	if r.Status >= 400 {
		one.errors = 1
	}
	rk := [3]string{r.Provider, r.Owner, r.Profile}
	t := totOf(&one)
	s.mu.Lock()
	if s.rolls.add(ProfileKey{r.Owner, r.Profile}, r.Agent, r.Time.Unix(), &t) {
		s.rolls.publish()
	}
	s.counter(s.pending, k).add(&one)
	run := s.running[rk]
	if run == nil {
		run = &counts{}
		s.running[rk] = run
	}
	run.add(&one)
	s.mu.Unlock()
}

// counter is m's counts for k, added if new.
func (s *Store) counter(m map[bucketKey]*counts, k bucketKey) *counts {
	c := m[k]
	if c == nil {
		c = &counts{}
		m[k] = c
	}
	return c
}

// Limits keeps the latest limits a provider reported for a profile and
// model (gateway.UsageSink).
func (s *Store) Limits(l Limits) {
	k := [4]string{l.Provider, l.Agent, l.Profile, l.Model}
	s.mu.Lock()
	if old, ok := s.limits[k]; !ok || !l.Time.Before(old.Time) {
		s.limits[k] = l
	}
	if old, ok := s.latest[k]; !ok || !l.Time.Before(old.Time) {
		s.latest[k] = l
	}
	s.mu.Unlock()
}

// Flush writes what was recorded since the last flush in one
// transaction. On failure the counts are kept for the next try.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	pending, limits := s.pending, s.limits
	s.pending, s.limits = map[bucketKey]*counts{}, map[[4]string]Limits{}
	taken := time.Now()
	s.mu.Unlock()
	if len(pending) == 0 && len(limits) == 0 {
		return nil
	}
	// At debug level every flush says what it takes and when it was
	// committed: taken is the moment the batch was cut (an answer recorded
	// before it is in this batch or an earlier one, after it in a later
	// one), which is what the gateway crash test checks the store against.
	s.log.Debug("usage flushing", "taken", taken.UnixMicro(), "requests", requestsIn(pending))
	err := s.write(pending, limits)
	if err != nil {
		s.restore(pending, limits)
		return err
	}
	s.log.Debug("usage flushed", "taken", taken.UnixMicro())
	return nil
}

func requestsIn(pending map[bucketKey]*counts) int64 {
	var n int64
	for _, c := range pending {
		n += c.requests
	}
	return n
}

// restore puts counts that could not be written back in front of what
// was recorded meanwhile.
func (s *Store) restore(pending map[bucketKey]*counts, limits map[[4]string]Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range pending {
		if n := s.pending[k]; n != nil {
			c.add(n)
		}
		s.pending[k] = c
	}
	for k, l := range limits {
		if _, newer := s.limits[k]; !newer {
			s.limits[k] = l
		}
	}
}

func (s *Store) write(pending map[bucketKey]*counts, limits map[[4]string]Limits) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	defer tx.Rollback()
	if len(pending) > 0 {
		st, err := tx.Prepare(`INSERT INTO usage (bucket, agent, owner, provider, profile, model, client,
			requests, errors, input, output, cache_read, cache_write, cost_micros)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, errors = errors + excluded.errors,
			input = input + excluded.input, output = output + excluded.output,
			cache_read = cache_read + excluded.cache_read, cache_write = cache_write + excluded.cache_write,
			cost_micros = cost_micros + excluded.cost_micros`)
		if err != nil {
			return fmt.Errorf("usage store: %w", err)
		}
		defer st.Close()
		for k, c := range pending {
			if _, err := st.Exec(k.bucket, k.agent, k.owner, k.provider, k.profile, k.model, k.client,
				c.requests, c.errors, c.input, c.output, c.cacheRead, c.cacheWrite, c.costMicros); err != nil {
				return fmt.Errorf("usage store: %w", err)
			}
		}
		if err := writeHours(tx, pending); err != nil { // rolling.go
			return err
		}
	}
	for _, l := range limits {
		ws, _ := json.Marshal(l.Windows)
		var reset int64
		if !l.ResetAt.IsZero() {
			reset = l.ResetAt.UnixMilli()
		}
		// A row another gateway wrote later than this answer stays.
		if _, err := tx.Exec(`INSERT INTO limits (provider, profile, model, agent, at, status, reset_at, windows)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO UPDATE SET agent = excluded.agent, at = excluded.at, status = excluded.status,
			reset_at = excluded.reset_at, windows = excluded.windows WHERE excluded.at >= limits.at`,
			l.Provider, l.Profile, l.Model, l.Agent, l.Time.UnixMilli(), l.Status, reset, string(ws)); err != nil {
			return fmt.Errorf("usage store: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("usage store: %w", err)
	}
	return nil
}

// prune deletes buckets older than the retention.
func (s *Store) prune() error {
	cut := s.opts.Now().Add(-s.opts.Retention).Unix()
	if _, err := s.db.Exec(`DELETE FROM usage WHERE bucket < ?`, cut); err != nil {
		return fmt.Errorf("usage store: pruning: %w", err)
	}
	return s.pruneHours(cut)
}

// Close writes what is pending and closes the database. It is safe to
// call twice.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		<-s.done
		err = errors.Join(s.Flush(), s.db.Close())
	})
	return err
}

// Check runs SQLite's integrity check over the whole file: nil when the
// database is sound, otherwise an error quoting what SQLite found.
func (s *Store) Check(ctx context.Context) error {
	var res string
	if err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("usage store: integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("usage store: integrity check: %s", res)
	}
	return nil
}
