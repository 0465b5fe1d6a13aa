package usage

import (
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
