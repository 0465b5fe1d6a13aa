package policy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
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
// A list made by [ProfileList.With] is an overlay: the facts of the list
// it was made from (base) with a few profiles replaced. Its full slice is
// made only when something reads it (Facts: an evaluation, explain), so a
// success that moves one profile's lastUsed in a thousand-profile list
// costs that profile, not a copy of the thousand.
//
// A ProfileList never changes after it is made; its facts must not be
// modified.
type ProfileList struct {
	// facts is the full slice, once made (always, for NewProfileList).
	factsOnce sync.Once
	facts     []ProfileFacts
	made      atomic.Bool // facts is made (read without factsOnce)
	// base and over are an overlay list's facts: base (a full slice,
	// shared with the list it came from) with over's profiles put in.
	base []ProfileFacts
	over []IndexedFact // sorted by index, distinct
	root *ProfileList  // an overlay list's: the list whose facts are base

	// rank is the interned id of the encoding without lastUsed and usage
	// (built-in policy only): of the whole list, or for an overlay list
	// whose built-in facts changed, of root's rank and the overlay
	// (appendOverlay). Either names the built-in facts exactly (equal
	// facts reached along other overlays may get another id: a cache
	// miss, never a wrong hit).
	rank  uint64
	times []int64 // sorted, distinct time boundaries (see validity); shared by patched lists
	// extra are more time boundaries (sorted, distinct): those of facts an
	// overlay brought in. A boundary left over from a replaced fact only
	// narrows validity, which is safe.
	extra []int64

	// exact is the interned id of the exact encoding, made on first use:
	// only a cache key for a user policy needs it, and while the built-in
	// policy alone decides no list pays for it.
	exactOnce sync.Once
	exact     uint64
}

// IndexedFact is one profile's facts at its index in a list.
type IndexedFact struct {
	At   int
	Fact ProfileFacts
}

// NewProfileList prepares ps, which it takes over: the caller must not
// modify ps afterwards. Its cost is linear in the number of profiles (and
// it is meant to be paid once per list, not per decision).
func NewProfileList(ps []ProfileFacts) *ProfileList {
	l := &ProfileList{facts: ps}
	l.factsOnce.Do(func() {})
	l.made.Store(true)
	l.rank = profileKeys.intern(appendProfiles([]byte{kindFull}, ps, true))
	for i := range ps {
		profileTimes(&ps[i], func(t int64) { l.times = append(l.times, t) })
	}
	slices.Sort(l.times)
	l.times = slices.Compact(l.times)
	return l
}

// maxOverlay is how many replaced profiles an overlay list holds before
// With makes its full slice: each With copies the overlay, and each full
// slice copies every profile, so past about √n replaced profiles a copy
// of the whole list is the cheaper of the two.
func maxOverlay(n int) int {
	return max(16, int(math.Sqrt(float64(n))))
}

// With returns l with the profiles at the indices of changed replaced by
// theirs (changed may list an index more than once; the last wins), or l
// itself when every changed profile's facts encode as l's do. Its cost is that of the changed profiles and l's overlay, not of the whole
// list: the new list is an overlay on l's facts (see ProfileList), with
// l's built-in key when the changed profiles differ from l's only in facts
// the built-in policy does not read (lastUsed, usage: see builtinUnread),
// and otherwise a key made from l's root's and the overlay's (a limit or
// cooldown moved: the decision must be made again, but the list is not
// encoded again for it). Past maxOverlay replaced profiles it makes its
// full slice instead. The caller must not modify changed afterwards.
func (l *ProfileList) With(changed []IndexedFact) *ProfileList {
	n := l.Len()
	var was, now []byte
	same, equal := true, true // the built-in encodings, the exact ones
	for i := range changed {
		c := &changed[i]
		if c.At < 0 || c.At >= n {
			panic(fmt.Sprintf("policy: ProfileList.With: index %d out of range [0,%d)", c.At, n))
		}
		if equal {
			was = appendProfile(was[:0], l.At(c.At), false)
			now = appendProfile(now[:0], &c.Fact, false)
			equal = bytes.Equal(was, now)
		}
		if !equal && same {
			was = appendProfile(was[:0], l.At(c.At), true)
			now = appendProfile(now[:0], &c.Fact, true)
			same = bytes.Equal(was, now)
		}
	}
	if equal {
		// Nothing a policy reads changed: l itself, whose keys (the
		// exact one too) a decision already cached may be under.
		return l
	}
	root, base, over := l.root, l.base, l.over
	switch full := l.materialized(); {
	case base == nil: // l is a full list
		root, base, over = l, l.facts, nil
	case full != nil: // l's full slice is made: the base, under a root that does not keep l's base alive
		root, base, over = fullList(full, l.rank), full, nil
	}
	out := &ProfileList{root: root, base: base, over: mergeOverlay(over, changed), times: l.times, extra: l.extra}
	overflow := len(out.over) > maxOverlay(n)
	switch {
	case same:
		out.rank = l.rank
	case overflow:
		return NewProfileList(out.Facts())
	default:
		out.rank = profileKeys.intern(appendOverlay([]byte{kindOverlayRank}, root.rank, out.over, true))
		out.extra = addTimes(out.extra, changed)
	}
	if overflow || len(out.extra) > maxExtra {
		out.times, out.extra = mergeTimes(out.times, out.extra), nil
	}
	if overflow {
		out.Facts() // the full slice, the next lists' base
		out.root, out.base, out.over = nil, nil, nil
	}
	return out
}

// fullList is a full list of ps with the built-in key rank, as a root for
// overlay lists (they read only its facts and keys).
func fullList(ps []ProfileFacts, rank uint64) *ProfileList {
	l := &ProfileList{facts: ps, rank: rank}
	l.factsOnce.Do(func() {})
	l.made.Store(true)
	return l
}

// The kinds of encoding the intern table holds (the first byte).
const (
	kindFull        = 0 // appendProfiles
	kindOverlayRank = 1 // appendOverlay, built-in
)

// appendOverlay appends an encoding of an overlay list: the interned id
// of its root's encoding and each overlay profile's index and encoding.
// Two lists with equal encodings have equal facts (with builtin, equal
// built-in facts).
func appendOverlay(b []byte, root uint64, over []IndexedFact, builtin bool) []byte {
	b = binary.AppendUvarint(b, root)
	b = binary.AppendUvarint(b, uint64(len(over)))
	for i := range over {
		b = binary.AppendUvarint(b, uint64(over[i].At))
		b = appendProfile(b, &over[i].Fact, builtin)
	}
	return b
}

// maxExtra bounds a list's extra time boundaries; past it they are merged
// into its times.
const maxExtra = 64

// addTimes is extra with the time boundaries of changed added.
func addTimes(extra []int64, changed []IndexedFact) []int64 {
	out := slices.Clone(extra)
	for i := range changed {
		profileTimes(&changed[i].Fact, func(t int64) { out = append(out, t) })
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mergeTimes is the sorted, distinct union of a and b (a new slice unless
// b is empty).
func mergeTimes(a, b []int64) []int64 {
	if len(b) == 0 {
		return a
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// mergeOverlay is over with changed put in: sorted by index, a later
// fact for an index replacing an earlier one. It copies; over is shared.
func mergeOverlay(over, changed []IndexedFact) []IndexedFact {
	out := make([]IndexedFact, 0, len(over)+len(changed))
	out = append(out, over...)
	for _, c := range changed {
		i, found := slices.BinarySearchFunc(out, c.At, func(f IndexedFact, at int) int { return f.At - at })
		if found {
			out[i] = c
		} else {
			out = slices.Insert(out, i, c)
		}
	}
	return out
}

// materialized returns the list's full slice if it has been made.
func (l *ProfileList) materialized() []ProfileFacts {
	if l.made.Load() {
		return l.facts
	}
	return nil
}

// Len is the number of profiles in the list.
func (l *ProfileList) Len() int {
	if l.base != nil {
		return len(l.base)
	}
	return len(l.facts)
}

// At returns the facts of the profile at index i (read-only).
func (l *ProfileList) At(i int) *ProfileFacts {
	if l.base == nil {
		return &l.facts[i]
	}
	if j, found := slices.BinarySearchFunc(l.over, i, func(f IndexedFact, at int) int { return f.At - at }); found {
		return &l.over[j].Fact
	}
	return &l.base[i]
}

// Index returns the index of the profile with id, when the list's
// profiles are sorted by id (as the gateway's are).
func (l *ProfileList) Index(id string) (int, bool) {
	ps := l.base
	if ps == nil {
		ps = l.facts
	}
	return slices.BinarySearchFunc(ps, id, func(f ProfileFacts, id string) int { return strings.Compare(f.ID, id) })
}

// exactID returns the interned id of the list's exact encoding.
func (l *ProfileList) exactID() uint64 {
	// Always of the whole list, unlike rank: two lists with equal facts
	// built along different chains of overlays must share it, or a
	// decision a user policy made (the warm-up's, say) is missed for the
	// same facts. A user policy's miss costs a whole evaluation anyway.
	l.exactOnce.Do(func() { l.exact = profileKeys.intern(appendProfiles([]byte{kindFull}, l.Facts(), false)) })
	return l.exact
}

// Facts returns the list's profiles (read-only). For an overlay list
// the first call makes the full slice (a copy of the base).
func (l *ProfileList) Facts() []ProfileFacts {
	l.factsOnce.Do(func() {
		ps := slices.Clone(l.base)
		for _, c := range l.over {
			ps[c.At] = c.Fact
		}
		l.facts = ps
		l.made.Store(true)
	})
	return l.facts
}

// SetProfiles makes l the input's profiles. For an overlay list (see
// ProfileList) in.Profiles is left nil until something reads the input's
// profiles as a whole: [Input.ProfileFacts] fills it, and the engine
// does so before it evaluates. A decision answered from the cache needs
// only the list's key, and never makes the slice.
func (in *Input) SetProfiles(l *ProfileList) {
	in.Profiles = nil
	if l.base == nil {
		in.Profiles = l.facts
	}
	in.list = l
}

// ProfileFacts returns in.Profiles, filling it first from the list set by
// SetProfiles if that has not been done. Read an input's profiles through
// it (or after the engine has decided on the input).
func (in *Input) ProfileFacts() []ProfileFacts {
	if in.Profiles == nil && in.list != nil {
		in.Profiles = in.list.Facts()
	}
	return in.Profiles
}

// prepared returns the input's ProfileList when in.Profiles still is that
// list (a caller may have replaced the slice since SetProfiles), or has
// not been filled yet.
func (in *Input) prepared() *ProfileList {
	l := in.list
	if l == nil {
		return nil
	}
	if in.Profiles == nil && l.base != nil {
		return l // not read yet
	}
	ps := l.Facts()
	if len(ps) != len(in.Profiles) || (len(ps) > 0 && &ps[0] != &in.Profiles[0]) {
		return nil
	}
	return l
}

// validity returns the clock interval [lo, hi) around now over which none
// of the list's time boundaries is crossed.
func (l *ProfileList) validity(now int64) (lo, hi int64) {
	lo, hi = around(l.times, now)
	if len(l.extra) > 0 {
		xlo, xhi := around(l.extra, now)
		lo, hi = max(lo, xlo), min(hi, xhi)
	}
	return lo, hi
}

// around returns the interval [lo, hi) around now that no time of ts
// (sorted) falls strictly inside.
func around(ts []int64, now int64) (lo, hi int64) {
	lo, hi = minTime, maxTime
	i, found := slices.BinarySearch(ts, now)
	if found {
		lo = now
		i++
	} else if i > 0 {
		lo = ts[i-1]
	}
	if i < len(ts) {
		hi = ts[i]
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
