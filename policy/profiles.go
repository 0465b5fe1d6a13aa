package policy

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// ProfileList is a list of profile facts prepared once for many decisions:
// a caller that sees the same profiles on many requests (the gateway, for
// one snapshot of an agent's state) builds it once and hands it to every
// Input with [Input.SetProfiles]. The engine then keys its decision cache
// and the cache entry's clock interval on the list as a whole, so a cached
// decision costs the same for ten profiles as for a thousand.
//
// A ProfileList never changes after NewProfileList; its facts must not be
// modified.
type ProfileList struct {
	facts []ProfileFacts
	rank  uint64  // interned id of the encoding without lastUsed and usage (built-in policy only)
	times []int64 // sorted, distinct time boundaries (see validity); shared by patched lists

	// exact is the interned id of the exact encoding, made on first use:
	// only a cache key for a user policy needs it, and while the built-in
	// policy alone decides no list pays for it.
	exactOnce sync.Once
	exact     uint64
}

// NewProfileList prepares ps, which it takes over: the caller must not
// modify ps afterwards. Its cost is linear in the number of profiles (and
// it is meant to be paid once per list, not per decision).
func NewProfileList(ps []ProfileFacts) *ProfileList {
	l := &ProfileList{facts: ps}
	l.rank = profileKeys.intern(appendProfiles(nil, ps, true))
	for i := range ps {
		profileTimes(&ps[i], func(t int64) { l.times = append(l.times, t) })
	}
	slices.Sort(l.times)
	l.times = slices.Compact(l.times)
	return l
}

// Patch prepares ps, which it takes over like NewProfileList, where ps is
// l's facts with at most the profiles at the indices changed replaced (same
// length, every other element equal to l's). When the changed profiles
// differ from l's only in facts the built-in policy does not read
// (lastUsed, usage: see builtinUnread), the new list shares l's built-in
// key and time boundaries, and its cost is that of the changed profiles
// alone: a success moves one profile's lastUsed, and a thousand-profile
// list is not encoded again for it. Otherwise it is NewProfileList(ps).
func (l *ProfileList) Patch(ps []ProfileFacts, changed []int) *ProfileList {
	if len(ps) != len(l.facts) {
		return NewProfileList(ps)
	}
	var was, now []byte
	for _, i := range changed {
		if i < 0 || i >= len(ps) {
			return NewProfileList(ps)
		}
		was = appendProfile(was[:0], &l.facts[i], true)
		now = appendProfile(now[:0], &ps[i], true)
		if !bytes.Equal(was, now) {
			return NewProfileList(ps)
		}
	}
	return &ProfileList{facts: ps, rank: l.rank, times: l.times}
}

// exactID returns the interned id of the list's exact encoding.
func (l *ProfileList) exactID() uint64 {
	l.exactOnce.Do(func() { l.exact = profileKeys.intern(appendProfiles(nil, l.facts, false)) })
	return l.exact
}

// Facts returns the list's profiles (read-only).
func (l *ProfileList) Facts() []ProfileFacts { return l.facts }

// SetProfiles makes l the input's profiles.
func (in *Input) SetProfiles(l *ProfileList) {
	in.Profiles = l.facts
	in.list = l
}

// prepared returns the input's ProfileList when in.Profiles still is that
// list (a caller may have replaced the slice since SetProfiles).
func (in *Input) prepared() *ProfileList {
	l := in.list
	if l == nil || len(l.facts) != len(in.Profiles) || (len(l.facts) > 0 && &l.facts[0] != &in.Profiles[0]) {
		return nil
	}
	return l
}

// validity returns the clock interval [lo, hi) around now over which none
// of the list's time boundaries is crossed.
func (l *ProfileList) validity(now int64) (lo, hi int64) {
	lo, hi = minTime, maxTime
	i, found := slices.BinarySearch(l.times, now)
	if found {
		lo = now
		i++
	} else if i > 0 {
		lo = l.times[i-1]
	}
	if i < len(l.times) {
		hi = l.times[i]
	}
	return lo, hi
}

// keyIntern gives each distinct profile encoding a number, so that a cache
// key can name a whole list in a few bytes and still be exact: two lists
// get the same number only when their encodings are equal byte for byte.
// Numbers are never reused; when the table is full it starts over, which
// only costs cache misses.
type keyIntern struct {
	seed maphash.Seed
	next atomic.Uint64

	mu    sync.Mutex
	m     map[uint64][]internEntry
	n     int // entries in m
	bytes int // encoding bytes held in m
}

type internEntry struct {
	enc []byte
	id  uint64
}

// maxInterned bounds the intern table: about one entry per snapshot of an
// agent's state still in use. internBudget bounds its bytes too, because an
// encoding grows with the profile count: a thousand-profile agent whose
// state changes often would otherwise pin a thousand large encodings.
const (
	maxInterned  = 1024
	internBudget = 16 << 20
)

var profileKeys = &keyIntern{seed: maphash.MakeSeed(), m: map[uint64][]internEntry{}}

func (k *keyIntern) intern(enc []byte) uint64 {
	h := maphash.Bytes(k.seed, enc)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.m[h] {
		if bytes.Equal(e.enc, enc) {
			return e.id
		}
	}
	if k.n >= maxInterned || k.bytes+len(enc) > internBudget {
		clear(k.m)
		k.n, k.bytes = 0, 0
	}
	id := k.next.Add(1)
	k.m[h] = append(k.m[h], internEntry{enc: bytes.Clone(enc), id: id})
	k.n++
	k.bytes += len(enc)
	return id
}

// appendProfiles appends an unambiguous encoding of ps (see appendKey);
// with builtin set it leaves lastUsed and usage out.
func appendProfiles(b []byte, ps []ProfileFacts, builtin bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for i := range ps {
		b = appendProfile(b, &ps[i], builtin)
	}
	return b
}

// appendProfile appends p's encoding for appendProfiles.
func appendProfile(b []byte, p *ProfileFacts, builtin bool) []byte {
	b = appendString(b, p.ID)
	b = appendString(b, p.Provider)
	b = appendString(b, p.Type)
	b = appendString(b, p.Status)
	b = appendString(b, p.Kind)
	b = appendOptInt(b, p.ExpiresAt)
	b = appendOptString(b, p.Email)
	if !builtin {
		b = binary.AppendVarint(b, p.LastUsed)
	}
	b = binary.AppendVarint(b, p.CooldownUntil)
	b = appendOptString(b, p.CooldownModel)
	b = binary.AppendVarint(b, p.DisabledUntil)
	b = appendOptString(b, p.DisabledReason)
	b = binary.AppendVarint(b, int64(p.ErrorCount))
	b = appendOptString(b, p.Scope)
	if l := p.Limits; l != nil {
		b = binary.AppendUvarint(append(b, 1), math.Float64bits(l.Headroom))
		b = appendString(b, l.Status)
		b = binary.AppendVarint(b, l.ResetAt)
	} else {
		b = append(b, 0)
	}
	if !builtin {
		b = appendUsage(b, p.Usage)
	}
	return b
}
