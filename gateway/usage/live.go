package usage

import (
	"maps"
	"slices"
)

// What this process has seen, for /metrics: running totals per provider
// and credential (owner and profile) since start (Prometheus counters may
// reset when a process restarts; the store keeps the durable history),
// and the latest limits per provider, owner, profile and model. Both are
// kept beside the pending batch, under the same lock, by Record and
// Limits.

// Spent is a credential's running totals since the process started.
type Spent struct {
	Provider         string
	Owner            string // the agent whose store holds it ("": environment or config)
	Profile          string
	Requests, Errors int64
	Usage
	CostMicros int64
}

// Spent lists the running totals, by provider, owner and profile.
func (s *Store) Spent() []Spent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Spent, 0, len(s.running))
	for _, k := range slices.SortedFunc(maps.Keys(s.running), cmpKey3) {
		c := s.running[k]
		out = append(out, Spent{Provider: k[0], Owner: k[1], Profile: k[2], Requests: c.requests, Errors: c.errors, CostMicros: c.costMicros,
			Usage: Usage{Input: c.input, Output: c.output, CacheRead: c.cacheRead, CacheWrite: c.cacheWrite}})
	}
	return out
}

// Latest lists the latest limits this process saw per provider, agent
// (the credential's owner), profile and model.
func (s *Store) Latest() []Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Limits, 0, len(s.latest))
	for _, k := range slices.SortedFunc(maps.Keys(s.latest), cmpKey4) {
		out = append(out, s.latest[k])
	}
	return out
}

func cmpKey3(a, b [3]string) int { return slices.Compare(a[:], b[:]) }
func cmpKey4(a, b [4]string) int { return slices.Compare(a[:], b[:]) }

// add adds c's counters to d.
func (d *counts) add(c *counts) {
	d.requests += c.requests
	d.errors += c.errors
	d.input += c.input
	d.output += c.output
	d.cacheRead += c.cacheRead
	d.cacheWrite += c.cacheWrite
	d.costMicros += c.costMicros
}
