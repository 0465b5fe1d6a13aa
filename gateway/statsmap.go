package gateway

import (
	"iter"
	"maps"
	"math"

	"github.com/opensoul/opensoul/gateway/store"
)

// StatsMap is a snapshot's usage stats by profile id. It is never changed
// once made: a state op makes a new one with the profile's new stats. A
// success writes two ops, and copying a thousand profiles' stats for each
// cost more than the rest of the request, so a new map shares its
// predecessor's base and carries the changed profiles in a small delta,
// folded into a new base once it holds about √n of them: an op copies
// O(√n) entries rather than n.
type StatsMap struct {
	base  map[string]store.UsageStats // shared between maps: never written
	delta map[string]store.UsageStats // newer than base; copied on write
}

// NewStatsMap makes a StatsMap of m, which the caller must not change
// afterwards.
func NewStatsMap(m map[string]store.UsageStats) StatsMap {
	return StatsMap{base: m}
}

// Get returns id's stats (zero when it has none).
func (m StatsMap) Get(id string) store.UsageStats {
	u, _ := m.Lookup(id)
	return u
}

// Lookup returns id's stats and whether it has any.
func (m StatsMap) Lookup(id string) (store.UsageStats, bool) {
	if u, ok := m.delta[id]; ok {
		return u, true
	}
	u, ok := m.base[id]
	return u, ok
}

// All yields every profile's stats once, in no particular order.
func (m StatsMap) All() iter.Seq2[string, store.UsageStats] {
	return func(yield func(string, store.UsageStats) bool) {
		for id, u := range m.delta {
			if !yield(id, u) {
				return
			}
		}
		for id, u := range m.base {
			if _, newer := m.delta[id]; newer {
				continue
			}
			if !yield(id, u) {
				return
			}
		}
	}
}

// Map returns a copy of the stats as a plain map.
func (m StatsMap) Map() map[string]store.UsageStats {
	out := make(map[string]store.UsageStats, len(m.base)+len(m.delta))
	maps.Insert(out, m.All())
	return out
}

// With returns a map with id's stats set to u; m is unchanged.
func (m StatsMap) With(id string, u store.UsageStats) StatsMap {
	if len(m.delta) >= foldAt(len(m.base)) {
		base := make(map[string]store.UsageStats, len(m.base)+len(m.delta)+1)
		maps.Copy(base, m.base)
		maps.Copy(base, m.delta)
		base[id] = u
		return StatsMap{base: base}
	}
	delta := make(map[string]store.UsageStats, len(m.delta)+1)
	maps.Copy(delta, m.delta)
	delta[id] = u
	return StatsMap{base: m.base, delta: delta}
}

// foldAt is the delta's size at which With folds it into a new base.
func foldAt(n int) int {
	return max(8, int(math.Sqrt(float64(n))))
}
