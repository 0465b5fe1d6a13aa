package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Query selects usage: buckets from Since (inclusive) on, of the
// requests of one agent when Agent is set, grouped by By.
type Query struct {
	Since time.Time
	Agent string // "": every agent
	// By is "profile" (the default: a credential, its owner and id),
	// "model", "client", "agent" (whose requests), "owner" (whose
	// credentials) or "provider".
	By string
}

// groupColumns are the columns Query.By may name: the key, and the
// owner reported beside it.
var groupColumns = map[string][2]string{"profile": {"profile", "owner"}, "model": {"model", "''"}, "client": {"client", "''"},
	"agent": {"agent", "''"}, "owner": {"owner", "''"}, "provider": {"provider", "''"}}

// Row is the usage of one group.
type Row struct {
	Key string `json:"key"`
	// Owner is, when grouped by profile, the agent whose store holds the
	// credential (absent for a key from the environment or the config,
	// whose id says so: env:…, config:…): an agent's own profile and
	// main's with the same id are two rows.
	Owner    string `json:"owner,omitempty"`
	Provider string `json:"provider,omitempty"` // when grouped by profile
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	Usage
	CostUSD float64 `json:"costUsd"`
}

// Add adds o's counts to r.
func (r *Row) Add(o Row) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	r.Usage.Add(o.Usage)
	r.CostUSD += o.CostUSD
}

// Totals sums the stored usage matching q, per group, most tokens first.
// What is recorded but not yet flushed is not included.
func (s *Store) Totals(ctx context.Context, q Query) ([]Row, error) {
	by := q.By
	if by == "" {
		by = "profile"
	}
	cols, ok := groupColumns[by]
	if !ok {
		return nil, fmt.Errorf("usage: cannot group by %q (want profile, model, client, agent, owner or provider)", q.By)
	}
	col, owner := cols[0], cols[1]
	rows, err := s.db.QueryContext(ctx, `SELECT `+col+`, `+owner+`, min(provider), sum(requests), sum(errors), sum(input), sum(output),
		sum(cache_read), sum(cache_write), sum(cost_micros)
		FROM usage WHERE bucket >= ? AND (? = '' OR agent = ?)
		GROUP BY `+col+`, `+owner+` ORDER BY sum(input + output + cache_read + cache_write) DESC, `+col+`, `+owner,
		q.Since.Truncate(Bucket).Unix(), q.Agent, q.Agent)
	if err != nil {
		return nil, fmt.Errorf("usage store: %w", err)
	}
	defer rows.Close()
	out := []Row{}
	for rows.Next() {
		var r Row
		var micros int64
		if err := rows.Scan(&r.Key, &r.Owner, &r.Provider, &r.Requests, &r.Errors, &r.Input, &r.Output, &r.CacheRead, &r.CacheWrite, &micros); err != nil {
			return nil, fmt.Errorf("usage store: %w", err)
		}
		if by != "profile" {
			r.Provider = ""
		}
		r.CostUSD = float64(micros) / 1e6
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage store: %w", err)
	}
	return out, nil
}

// LatestLimits is the latest limits stored per provider, profile, agent and
// model.
func (s *Store) LatestLimits(ctx context.Context) ([]Limits, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT provider, profile, model, agent, at, status, reset_at, windows
		FROM limits ORDER BY provider, profile, agent, model`)
	if err != nil {
		return nil, fmt.Errorf("usage store: %w", err)
	}
	defer rows.Close()
	out := []Limits{}
	for rows.Next() {
		var l Limits
		var at, reset int64
		var ws string
		if err := rows.Scan(&l.Provider, &l.Profile, &l.Model, &l.Agent, &at, &l.Status, &reset, &ws); err != nil {
			return nil, fmt.Errorf("usage store: %w", err)
		}
		l.Time = time.UnixMilli(at)
		if reset > 0 {
			l.ResetAt = time.UnixMilli(reset)
		}
		if err := json.Unmarshal([]byte(ws), &l.Windows); err != nil {
			return nil, fmt.Errorf("usage store: limits of %s: %w", l.Profile, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage store: %w", err)
	}
	return out, nil
}
