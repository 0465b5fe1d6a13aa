package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestPatchedListMatchesNew walks a list through random changes of a few
// profiles at a time and checks every ProfileList.With against
// NewProfileList of the same facts: the same facts, the same time
// boundaries, the earlier list's built-in key kept exactly when the
// built-in encoding is unchanged (only lastUsed and usage moved), no full
// slice made for such a change until the overlay outgrows maxOverlay,
// and the same decisions from a caching engine.
func TestPatchedListMatchesNew(t *testing.T) {
	t.Parallel()
	cached := newEngine(t, Options{})
	plain := newEngine(t, Options{CacheSize: -1})
	r := rand.New(rand.NewPCG(13, 1))
	in := benchInput(25)
	cur := NewProfileList(slices.Clone(in.Profiles))
	str := func(s string) *string { return &s }
	mutate := []func(p *ProfileFacts){
		func(p *ProfileFacts) { p.LastUsed = t0 + r.Int64N(100)*minute }, // unread by the built-in policy
		func(p *ProfileFacts) { p.LastUsed = t0 - r.Int64N(100)*minute },
		func(p *ProfileFacts) { p.Usage = &UsageFacts{H1: UsageTotals{Requests: r.Int64N(50)}} },
		func(p *ProfileFacts) { p.Usage = nil },
		func(p *ProfileFacts) { p.CooldownUntil = t0 + (r.Int64N(21)-10)*minute },
		func(p *ProfileFacts) { p.CooldownModel = []*string{nil, str("claude-sonnet-5")}[r.IntN(2)] },
		func(p *ProfileFacts) { p.DisabledUntil = t0 + (r.Int64N(21)-10)*minute },
		func(p *ProfileFacts) { p.DisabledReason = []*string{nil, str("auth")}[r.IntN(2)] },
		func(p *ProfileFacts) { p.Status = []string{"ok", "expiring", "expired", "invalid"}[r.IntN(4)] },
		func(p *ProfileFacts) { p.ErrorCount = r.IntN(3) },
		func(p *ProfileFacts) { p.Scope = []*string{nil, str("claude-code")}[r.IntN(2)] },
		func(p *ProfileFacts) {
			p.Limits = []*LimitFacts{nil, {Headroom: 0.5, Status: "allowed", ResetAt: t0 + 5*minute}}[r.IntN(2)]
		},
		func(p *ProfileFacts) { e := t0 + r.Int64N(30)*minute; p.ExpiresAt = &e },
	}
	reused, rebuilt, lazy := 0, 0, 0
	rankEnc, exactEncs := map[uint64]string{}, map[uint64]string{}
	for step := range 400 {
		ps := slices.Clone(cur.Facts())
		var at []IndexedFact
		for range 1 + r.IntN(3) {
			i := r.IntN(len(ps))
			// Mostly the successes' lastUsed, as in the gateway.
			k := r.IntN(len(mutate))
			if r.IntN(4) != 0 {
				k = r.IntN(4)
			}
			mutate[k](&ps[i])
			at = append(at, IndexedFact{i, ps[i]})
		}
		if r.IntN(3) != 0 {
			cur = cur.With(nil) // an overlay list whose full slice is not made
		}
		patched := cur.With(at)
		if r.IntN(4) == 0 { // a later list's exact key is made from this one's
			cur.exactID()
		}
		if patched.materialized() == nil {
			lazy++
			for i := range ps {
				if !reflect.DeepEqual(*patched.At(i), ps[i]) {
					t.Fatalf("step %d: At(%d) = %+v, want %+v", step, i, *patched.At(i), ps[i])
				}
			}
		}
		fresh := NewProfileList(slices.Clone(ps))
		if !reflect.DeepEqual(patched.Facts(), ps) {
			t.Fatalf("step %d: the patched list's facts differ from the patched slice", step)
		}
		all := mergeTimes(patched.times, patched.extra)
		for _, ti := range fresh.times {
			if _, found := slices.BinarySearch(all, ti); !found {
				t.Fatalf("step %d: time boundaries %v lack %d (want at least %v)", step, all, ti, fresh.times)
			}
		}
		builtinEnc := string(appendProfiles(nil, ps, true))
		same := builtinEnc == string(appendProfiles(nil, cur.Facts(), true))
		if (patched.rank == cur.rank) != same {
			t.Fatalf("step %d: built-in key kept %v, but the built-in encoding unchanged is %v", step, patched.rank == cur.rank, same)
		}
		// A key names one encoding: two lists with one key have equal
		// facts (for the built-in key, equal built-in facts).
		if enc, ok := rankEnc[patched.rank]; ok && enc != builtinEnc {
			t.Fatalf("step %d: built-in key %d names two different lists", step, patched.rank)
		}
		rankEnc[patched.rank] = builtinEnc
		exactEnc := string(appendProfiles(nil, ps, false))
		if enc, ok := exactEncs[patched.exactID()]; ok && enc != exactEnc {
			t.Fatalf("step %d: exact key %d names two different lists", step, patched.exactID())
		}
		exactEncs[patched.exactID()] = exactEnc
		if same && len(cur.times) > 0 && &patched.times[0] != &cur.times[0] {
			t.Fatalf("step %d: only lastUsed or usage changed, but the list was prepared again", step)
		}
		if same && len(patched.over) == 0 && patched.base != nil {
			t.Fatalf("step %d: an overlay list without its changes", step)
		}
		if same {
			reused++
		} else {
			rebuilt++
		}
		now := t0 + r.Int64N(20)*minute
		got := *in
		got.Now = now
		got.SetProfiles(patched)
		want := *in
		want.Now = now
		want.Profiles = slices.Clone(ps)
		d, err := cached.Decide(context.Background(), &got)
		if err != nil {
			t.Fatal(err)
		}
		w, err := plain.Decide(context.Background(), &want)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d.Candidates, w.Candidates) {
			t.Fatalf("step %d: candidates %v from the patched list, want %v", step, d.Candidates, w.Candidates)
		}
		cur = patched
	}
	if reused < 50 || rebuilt < 50 || lazy < 50 {
		t.Fatalf("reused %d, rebuilt %d built-in keys, %d lists left lazy: the test no longer exercises all three", reused, rebuilt, lazy)
	}
}

// TestPatchOutOfRange: an index outside the list is a caller's bug, and
// With says which instead of patching another profile.
func TestPatchOutOfRange(t *testing.T) {
	t.Parallel()
	l := NewProfileList(slices.Clone(benchInput(5).Profiles))
	for _, at := range []int{5, -1} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), fmt.Sprintf("index %d out of range", at)) {
					t.Errorf("With(index %d): recovered %v, want a panic naming the index", at, r)
				}
			}()
			l.With([]IndexedFact{{At: at}})
		}()
	}
}

// TestInputProfilesLazy: an input given an overlay list has no Profiles
// slice until something reads them (ProfileFacts, or an evaluation), and
// then has exactly the list's facts.
func TestInputProfilesLazy(t *testing.T) {
	t.Parallel()
	in := benchInput(30)
	l := NewProfileList(slices.Clone(in.Profiles))
	p := in.Profiles[3]
	p.LastUsed++
	o := l.With([]IndexedFact{{3, p}})
	var got Input
	got.SetProfiles(o)
	if got.Profiles != nil || got.prepared() != o {
		t.Fatalf("SetProfiles(overlay) made the slice (%d) or lost the list", len(got.Profiles))
	}
	want := slices.Clone(in.Profiles)
	want[3] = p
	if !reflect.DeepEqual(got.ProfileFacts(), want) || got.prepared() != o {
		t.Fatal("ProfileFacts differs from the overlay's facts, or unprepared the input")
	}
	e := newEngine(t, Options{CacheSize: -1})
	in2 := *in
	in2.Profiles = nil
	in2.SetProfiles(o.With(nil))
	if _, err := e.Decide(context.Background(), &in2); err != nil || !reflect.DeepEqual(in2.Profiles, want) {
		t.Fatalf("after an evaluation: err %v, %d profiles", err, len(in2.Profiles))
	}
}

// TestOverlayKeysAreExact: the keys of overlay lists whose built-in facts
// changed name their facts exactly: the same change on two different
// roots, or at two indices, gives two keys; two changes that differ only
// in lastUsed share the built-in key and not the exact one; and equal
// facts reached the same way share both.
func TestOverlayKeysAreExact(t *testing.T) {
	t.Parallel()
	in := benchInput(40)
	a := NewProfileList(slices.Clone(in.Profiles))
	bps := slices.Clone(in.Profiles)
	bps[0].CooldownUntil = t0 + 7*minute
	b := NewProfileList(bps)
	cool := func(i int, lastUsed int64) []IndexedFact {
		f := in.Profiles[i]
		f.CooldownUntil, f.LastUsed = t0+3*minute, lastUsed
		return []IndexedFact{{i, f}}
	}
	if x, y := a.With(cool(5, 0)), b.With(cool(5, 0)); x.rank == y.rank || x.exactID() == y.exactID() {
		t.Error("one change on two different lists: one key")
	}
	if x, y := a.With(cool(3, 0)), a.With(cool(4, 0)); x.rank == y.rank || x.exactID() == y.exactID() {
		t.Error("one change at two indices: one key")
	}
	x, y := a.With(cool(3, t0)), a.With(cool(3, t0+minute))
	if x.rank != y.rank || x.exactID() == y.exactID() {
		t.Errorf("changes differing in lastUsed alone: built-in keys equal %v (want true), exact keys equal %v (want false)",
			x.rank == y.rank, x.exactID() == y.exactID())
	}
	if z := a.With(cool(3, t0)); z.rank != x.rank || z.exactID() != x.exactID() {
		t.Error("equal facts reached the same way: other keys")
	}
}

// TestOverlayRootsDoNotChain: a list made from an overlay list whose full
// slice was made keeps that slice as its base, but not the older bases
// behind it (each a copy of every profile's facts).
func TestOverlayRootsDoNotChain(t *testing.T) {
	t.Parallel()
	in := benchInput(50)
	l := NewProfileList(slices.Clone(in.Profiles))
	for i := range 200 {
		p := *l.At(i % 50)
		p.LastUsed++
		if i%3 == 0 {
			p.CooldownUntil = t0 + int64(i)*minute
		}
		l = l.With([]IndexedFact{{i % 50, p}})
		if i%2 == 0 {
			l.Facts() // an evaluation read it
		}
		if r := l.root; r != nil && (r.root != nil || r.base != nil) {
			t.Fatalf("step %d: the root is an overlay list too: its bases chain", i)
		}
	}
}
