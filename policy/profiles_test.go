package policy

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
)

// withList returns a copy of in whose profiles are a ProfileList.
func withList(in *Input) *Input {
	out := *in
	out.SetProfiles(NewProfileList(append([]ProfileFacts(nil), in.Profiles...)))
	return &out
}

// TestProfileListDecides: an input whose profiles come from a ProfileList
// gets the decision of the same input built field by field, cached or not,
// and the list's clock interval is the one computed from the profiles.
func TestProfileListDecides(t *testing.T) {
	t.Parallel()
	plain := newEngine(t, Options{CacheSize: -1})
	cached := newEngine(t, Options{})
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		in := benchInput(1 + r.IntN(30))
		for j := range in.Profiles {
			p := &in.Profiles[j]
			p.CooldownUntil = t0 + (r.Int64N(21)-10)*minute
			p.DisabledUntil = t0 + (r.Int64N(41)-20)*minute
			if r.IntN(3) == 0 {
				e := t0 + (r.Int64N(11)-5)*minute
				p.ExpiresAt = &e
				p.Type = "token"
			}
		}
		in.Now = t0 + (r.Int64N(21)-10)*minute
		want := decide(t, plain, in)
		l := withList(in)
		if got := decide(t, cached, l); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: with a list %+v, want %+v", i, got, want)
		}
		lo, hi := validity(in)
		if llo, lhi := validity(l); llo != lo || lhi != hi {
			t.Fatalf("case %d: list validity [%d, %d), want [%d, %d)", i, llo, lhi, lo, hi)
		}
	}
}

// TestProfileListKey: the cache key names a list by its content, so two
// lists with the same facts share decisions and lists that differ in any
// fact do not; an input whose profiles were replaced after SetProfiles is
// keyed on its own profiles.
func TestProfileListKey(t *testing.T) {
	t.Parallel()
	in := benchInput(5)
	a, b := withList(in), withList(in)
	if string(appendKey(nil, a, false)) != string(appendKey(nil, b, false)) {
		t.Error("equal lists, different keys")
	}
	c := withList(in)
	changed := append([]ProfileFacts(nil), in.Profiles...)
	changed[3].ErrorCount++
	c.SetProfiles(NewProfileList(changed))
	if string(appendKey(nil, a, false)) == string(appendKey(nil, c, false)) {
		t.Error("lists that differ in errorCount share a key")
	}
	// lastUsed moved without changing the order: same key when ordinal.
	moved := append([]ProfileFacts(nil), in.Profiles...)
	for i := range moved {
		moved[i].LastUsed += minute
	}
	d := withList(in)
	d.SetProfiles(NewProfileList(moved))
	if string(appendKey(nil, a, true)) != string(appendKey(nil, d, true)) {
		t.Error("lists that differ only in lastUsed values (same ranks) have different ordinal keys")
	}
	if string(appendKey(nil, a, false)) == string(appendKey(nil, d, false)) {
		t.Error("lists that differ in lastUsed share an exact key")
	}
	// Replacing the slice after SetProfiles: the list no longer applies.
	e := withList(in)
	e.Profiles = changed
	if e.prepared() != nil || string(appendKey(nil, e, false)) != string(appendKey(nil, &Input{
		Agent: in.Agent, Session: in.Session, Request: in.Request, Order: in.Order, Profiles: changed, Env: in.Env,
	}, false)) {
		t.Error("a replaced slice is still keyed as the list")
	}
	ctx := context.Background()
	eng := newEngine(t, Options{})
	if _, err := eng.Decide(ctx, e); err != nil {
		t.Fatal(err)
	}
}
