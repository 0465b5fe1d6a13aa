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
	// lastUsed moved, order and all: the same key for the built-in policy.
	moved := append([]ProfileFacts(nil), in.Profiles...)
	for i := range moved {
		moved[i].LastUsed = t0 + int64(len(moved)-i)*minute
	}
	d := withList(in)
	d.SetProfiles(NewProfileList(moved))
	if string(appendKey(nil, a, true)) != string(appendKey(nil, d, true)) {
		t.Error("lists that differ only in lastUsed have different built-in keys")
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

// TestTermMemoFollowsFacts: the engine reuses a profile's input term only
// while its facts are unchanged, including facts behind pointers the caller
// changes in place, so every decision equals one made from a freshly
// converted input.
func TestTermMemoFollowsFacts(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{CacheSize: -1})
	set := e.set.Load()
	r := rand.New(rand.NewPCG(3, 4))
	in := benchInput(12)
	exp, model, reason := t0+minute, "claude-opus-5", "billing"
	for i := range 300 {
		p := &in.Profiles[r.IntN(len(in.Profiles))]
		switch r.IntN(6) {
		case 0:
			p.CooldownUntil = t0 + (r.Int64N(5)-2)*minute
		case 1:
			p.LastUsed = t0 - r.Int64N(100)*minute
		case 2:
			p.Type = []string{"oauth", "token", "api_key"}[r.IntN(3)]
			p.ExpiresAt = &exp
		case 3:
			exp = t0 + (r.Int64N(5)-2)*minute // changes every profile pointing at exp
		case 4:
			p.CooldownModel, p.CooldownUntil = &model, t0+minute
			model = []string{"claude-opus-5", "claude-sonnet-5"}[r.IntN(2)]
		case 5:
			p.DisabledReason, p.DisabledUntil = &reason, t0+(r.Int64N(3)-1)*minute
			reason = []string{"billing", "auth"}[r.IntN(2)]
		}
		got := decide(t, e, in)
		want, err := set.eval(context.Background(), in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: with the memo %+v, converted afresh %+v", i, got, want)
		}
	}
}

func TestQuantizeUsage(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]int64{-5: 0, 0: 0, 7: 7, 99: 99, 100: 100, 109: 100, 110: 110, 999: 990, 1000: 1000, 1099: 1000,
		1500: 1500, 19_999: 19_000, 1_999_999: 1_900_000, 2_000_000: 2_000_000, 123_456_789: 120_000_000} {
		if got := QuantizeCount(n); got != want {
			t.Errorf("QuantizeCount(%d) = %d, want %d", n, got, want)
		}
	}
	for micros, want := range map[int64]float64{0: 0, 9_999: 0, 10_000: 0.01, 999_999: 0.99, 1_000_000: 1, 1_099_999: 1, 1_100_000: 1.1,
		19_990_000: 19, 19_999_999: 19, 20_000_000: 20, 20_990_000: 20, 123_000_000: 120} {
		if got := QuantizeCost(micros); got != want {
			t.Errorf("QuantizeCost(%d) = %v, want %v", micros, got, want)
		}
	}
}
