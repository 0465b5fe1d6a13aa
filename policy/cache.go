package policy

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"sync"
)

// defaultCacheSize bounds the decision cache when Options.CacheSize is 0.
const defaultCacheSize = 4096

// cacheBudget bounds the bytes the decision cache holds (keys and
// decisions, as counted by entrySize). An entry grows with the number of
// profiles (every profile has a reason), so the entry count alone would
// let a thousand-profile agent pin hundreds of megabytes.
const cacheBudget = 32 << 20

// decisionCache maps every input fact except the clock to a decision and
// the clock interval [lo, hi) over which that decision holds.
//
// Correctness rests on two things. The key is the exact encoding of the
// facts (an entry stores it and a hit compares it byte for byte, so a hash
// collision is a miss, never a wrong answer). And the built-in policy
// depends on input.now only through comparisons with cooldownUntil,
// disabledUntil and expiresAt, so its answer is constant while now stays
// between the largest such time at or before now and the smallest after it.
// Policies that read the clock any other way are not cached at all (see
// volatileRef). Entries carry the policy generation; a reload bumps it.
type decisionCache struct {
	seed maphash.Seed
	max  int

	budget int // bytes; see cacheBudget

	mu      sync.RWMutex // guards the fields below
	entries map[uint64]*cacheEntry
	size    int // sum of the entries' sizes
}

// cacheEntry never changes after it is stored.
type cacheEntry struct {
	gen    uint64
	key    []byte
	lo, hi int64 // valid while lo <= now < hi
	d      Decision
	size   int // entrySize
}

func newDecisionCache(max int) *decisionCache {
	return &decisionCache{seed: maphash.MakeSeed(), max: max, budget: cacheBudget, entries: make(map[uint64]*cacheEntry)}
}

// entrySize approximates the bytes an entry holds: its key, the strings of
// its decision and a word or two of overhead for each.
func entrySize(key []byte, d Decision) int {
	const word = 16
	n := 128 + len(key)
	for _, id := range d.Candidates {
		n += word + len(id)
	}
	for _, id := range d.Cooling {
		n += word + len(id)
	}
	for id, r := range d.Reasons {
		n += 2*word + len(id) + len(r)
	}
	return n
}

func (c *decisionCache) get(gen uint64, key []byte, now int64) (Decision, bool) {
	h := maphash.Bytes(c.seed, key)
	c.mu.RLock()
	e := c.entries[h]
	c.mu.RUnlock()
	if e == nil || e.gen != gen || now < e.lo || now >= e.hi || !bytes.Equal(e.key, key) {
		return Decision{}, false
	}
	return e.d, true
}

func (c *decisionCache) put(gen uint64, key []byte, lo, hi int64, d Decision) {
	size := entrySize(key, d)
	if size > c.budget/4 {
		return // one decision that big would crowd out the rest
	}
	e := &cacheEntry{gen: gen, key: bytes.Clone(key), lo: lo, hi: hi, d: d, size: size}
	h := maphash.Bytes(c.seed, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[h]; old != nil {
		c.size -= old.size
		delete(c.entries, h)
	}
	if len(c.entries) >= c.max || c.size+size > c.budget {
		// Drop about a quarter of the entries or of the bytes, whichever
		// is more, in map order (effectively random).
		n, free := 0, c.budget/4+size
		if len(c.entries) >= c.max {
			n, free = c.max/4+1, 0
		}
		for k, old := range c.entries {
			delete(c.entries, k)
			c.size -= old.size
			n--
			free -= old.size
			if n <= 0 && free <= 0 {
				break
			}
		}
	}
	c.entries[h] = e
	c.size += size
}

func (c *decisionCache) reset() {
	c.mu.Lock()
	clear(c.entries)
	c.size = 0
	c.mu.Unlock()
}

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const (
	minTime = math.MinInt64
	maxTime = math.MaxInt64
)

// validity returns the clock interval [lo, hi) around in.Now over which no
// time boundary in the input is crossed.
func validity(in *Input) (lo, hi int64) {
	if l := in.prepared(); l != nil {
		return l.validity(in.Now)
	}
	lo, hi = minTime, maxTime
	note := func(t int64) {
		if t <= in.Now {
			lo = max(lo, t)
		} else {
			hi = min(hi, t)
		}
	}
	for i := range in.Profiles {
		profileTimes(&in.Profiles[i], note)
	}
	return lo, hi
}

// profileTimes calls note with each of p's times the built-in policy
// compares with now (its time boundaries).
func profileTimes(p *ProfileFacts, note func(int64)) {
	note(p.CooldownUntil)
	note(p.DisabledUntil)
	if p.ExpiresAt != nil {
		note(*p.ExpiresAt)
	}
	if p.Limits != nil {
		note(p.Limits.ResetAt)
	}
}

// appendKey appends an unambiguous encoding of every fact in in except Now.
//
// With builtin set, the facts the built-in policy never reads are left out
// (builtinUnread; TestBuiltinReadsNoUnkeyedFact holds the policy to it):
// profiles' lastUsed and usage (profiles of one type are of equal rank and the
// gateway rotates among them, see Decision.Rotate) and the session's start
// and request count. So using a profile, which moves its lastUsed, or a
// session growing busier, does not cost a cache miss. The engine sets it
// only when no user policy is loaded: a user policy could read them.
//
// Profiles set with a ProfileList are encoded as the list's interned
// number, so the key's length does not grow with the number of profiles.
// builtinUnread names the input fields the built-in policy does not read
// and the built-in-only cache key leaves out. usage (the agent's and
// every profile's spend) is among them: its totals move with every
// answer, and only a user policy may read them.
var builtinUnread = []string{"lastUsed", "started", "requests", "usage"}

// ReadsUsage says whether a policy in force may read the usage facts
// (input.agent.usage, input.profiles[i].usage): true once a user policy
// is loaded. The built-in policy never reads them (builtinUnread), so a
// caller may leave them out (nil) while it alone decides, and spare the
// work of keeping them current.
func (e *Engine) ReadsUsage() bool { return !e.set.Load().ordinal }

// sessionRead says whether the built-in policy reads the session's id
// and newness for in: only to follow an auto pin (not in a new session)
// and to say so in its reason. Without one, a request that starts a
// session decides as a sessionless one, so the built-in-only key leaves
// both out and a new session's first request hits the cache
// (TestBuiltinSessionKey holds the policy to it).
func sessionRead(in *Input) bool {
	return in.Session.Pin != nil && in.Session.Pin.Source == "auto"
}

func appendKey(b []byte, in *Input, builtin bool) []byte {
	b = appendString(b, in.Agent.ID)
	b = appendAttrs(b, in.Agent.Attrs)
	if !builtin {
		b = appendUsage(b, in.Agent.Usage)
	}
	if !builtin || sessionRead(in) {
		b = appendString(b, in.Session.ID)
		b = appendBool(b, in.Session.New)
	}
	if p := in.Session.Pin; p != nil {
		b = append(b, 1)
		b = appendString(b, p.Profile)
		b = appendString(b, p.Source)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, in.Session.Client.Name)
	b = appendString(b, in.Session.Client.Version)
	if !builtin {
		b = binary.AppendVarint(b, in.Session.Started)
		b = binary.AppendVarint(b, in.Session.Requests)
	}
	b = appendString(b, in.Request.Provider)
	b = appendString(b, in.Request.Model)
	b = appendString(b, in.Request.API)
	b = appendBool(b, in.Request.Stream)
	b = appendString(b, in.Request.Client.Name)
	b = appendString(b, in.Request.Client.Version)
	b = appendStrings(b, in.Order.Store)
	b = appendStrings(b, in.Order.Config)
	switch l := in.prepared(); {
	case l == nil:
		b = appendProfiles(append(b, 0), in.Profiles, builtin)
	case builtin:
		b = binary.AppendUvarint(append(b, 1), l.rank)
	default:
		b = binary.AppendUvarint(append(b, 2), l.exactID())
	}
	b = binary.AppendUvarint(b, uint64(len(in.Env)))
	for _, e := range in.Env {
		b = appendString(b, e.Var)
		b = appendString(b, e.Type)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendAttrs encodes a string map in key order.
func appendAttrs(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	if len(m) == 0 {
		return b
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendOptInt(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), *n)
}

// appendUsage encodes usage facts (nil apart from all zero).
func appendUsage(b []byte, u *UsageFacts) []byte {
	if u == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	for _, t := range [...]*UsageTotals{&u.H1, &u.H5, &u.H24, &u.D30} {
		b = binary.AppendVarint(b, t.Requests)
		b = binary.AppendVarint(b, t.Tokens)
		b = binary.AppendVarint(b, t.Input)
		b = binary.AppendVarint(b, t.Output)
		b = binary.AppendVarint(b, t.CacheRead)
		b = binary.AppendVarint(b, t.CacheWrite)
		b = binary.AppendUvarint(b, math.Float64bits(t.Cost))
	}
	return b
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0)
	}
	return appendString(append(b, 1), *s)
}
