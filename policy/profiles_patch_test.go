package policy

import (
	"bytes"
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestPatchedListMatchesNew walks a list through random changes of a few
// profiles at a time and checks every ProfileList.Patch against
// NewProfileList of the same facts: the same time boundaries, the earlier
// list's built-in key kept exactly when the built-in encoding is
// unchanged (only lastUsed and usage moved), and the same decisions from
// a caching engine.
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
	reused, rebuilt := 0, 0
	for step := range 400 {
		ps := slices.Clone(cur.Facts())
		var at []int
		for range 1 + r.IntN(3) {
			i := r.IntN(len(ps))
			// Mostly the successes' lastUsed, as in the gateway.
			k := r.IntN(len(mutate))
			if r.IntN(2) == 0 {
				k = r.IntN(4)
			}
			mutate[k](&ps[i])
			at = append(at, i)
		}
		patched := cur.Patch(ps, at)
		fresh := NewProfileList(slices.Clone(ps))
		if &patched.Facts()[0] != &ps[0] {
			t.Fatalf("step %d: Patch did not take over the facts", step)
		}
		if !slices.Equal(patched.times, fresh.times) {
			t.Fatalf("step %d: time boundaries %v, want %v", step, patched.times, fresh.times)
		}
		same := bytes.Equal(appendProfiles(nil, cur.Facts(), true), appendProfiles(nil, ps, true))
		if (patched.rank == cur.rank) != same {
			t.Fatalf("step %d: built-in key kept %v, but the built-in encoding unchanged is %v", step, patched.rank == cur.rank, same)
		}
		if same && len(cur.times) > 0 && &patched.times[0] != &cur.times[0] {
			t.Fatalf("step %d: only lastUsed or usage changed, but the list was prepared again", step)
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
	if reused < 50 || rebuilt < 50 {
		t.Fatalf("reused %d, rebuilt %d built-in keys: the test no longer exercises both", reused, rebuilt)
	}
}

// TestPatchOutOfShape: a patch whose facts do not fit the list (another
// length, an index out of range) is prepared as a new list, not indexed.
func TestPatchOutOfShape(t *testing.T) {
	t.Parallel()
	in := benchInput(5)
	l := NewProfileList(slices.Clone(in.Profiles))
	for _, c := range []struct {
		ps []ProfileFacts
		at []int
	}{
		{slices.Clone(benchInput(6).Profiles), nil},
		{slices.Clone(in.Profiles), []int{5}},
		{slices.Clone(in.Profiles), []int{-1}},
	} {
		p := l.Patch(c.ps, c.at)
		if want := NewProfileList(slices.Clone(c.ps)); len(p.Facts()) != len(c.ps) || !slices.Equal(p.times, want.times) {
			t.Errorf("Patch(%d profiles, %v) = %d profiles, times %v; want %d, %v", len(c.ps), c.at, len(p.Facts()), p.times, len(c.ps), want.times)
		}
	}
}
