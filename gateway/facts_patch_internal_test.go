package gateway

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// TestPatchedFactsEqualRebuilt applies random state ops the way the
// journal does (agentCache.apply) and checks, after each, that the
// snapshot's profile facts, patched from earlier snapshots' for the
// changed profiles, equal facts built from scratch for every profile.
//
// It runs in a child process of the test binary: its hundreds of lists
// would fill policy's process-wide intern table here, and the table's
// reset costs the tests that count decision-cache misses
// (TestBusySessionsStayCached) a miss each.
func TestPatchedFactsEqualRebuilt(t *testing.T) {
	if os.Getenv("OPENSOUL_FACTS_DIFF_CHILD") == "" {
		t.Parallel()
		cmd := exec.Command(os.Args[0], "-test.run=^TestPatchedFactsEqualRebuilt$", "-test.count=1")
		cmd.Env = append(os.Environ(), "OPENSOUL_FACTS_DIFF_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the differential run failed: %v\n%s", err, out)
		}
		return
	}
	t0 := time.Unix(1_800_000_000, 0)
	providers := []string{"anthropic", "openai"}
	snap := &Snapshot{
		Agent: "work", Profiles: map[string]store.Credential{}, Owner: map[string]string{},
		LastGood: map[string]string{},
		facts:    &factsMemo{}, scrub: &scrubMemo{},
	}
	for i := range 40 {
		id := fmt.Sprintf("p%02d", i)
		c := store.Credential{Provider: providers[i%2], Type: store.TypeAPIKey, Key: "k-" + id}
		switch i % 5 {
		case 1: // a token that turns expiring, then expired, during the run
			c = store.Credential{Provider: c.Provider, Type: store.TypeToken, Token: "t-" + id,
				Expires: t0.Add(ExpiringWithin + time.Duration(i)*time.Minute).UnixMilli(), Email: id + "@example.com"}
		case 3:
			c.Key = "" // missing
		}
		snap.Profiles[id] = c
		snap.Owner[id] = []string{"work", store.DefaultAgent}[i%3%2]
	}
	a := &agentLive{}
	a.snap.Store(snap)
	c := &agentCache{agents: map[string]*agentLive{"work": a}, cd: func() Cooldowns { return Cooldowns{} }}

	verdict := func(id string, cr store.Credential) Verdict {
		switch id[len(id)-1] {
		case '7':
			return Verdict{} // no module verdict: such facts are not kept
		case '4':
			return Verdict{Status: StatusInvalid, Kind: "setup_token"}
		}
		return Verdict{Status: ProfileStatus(cr, t0), Kind: "checked"}
	}
	// The limits move along many generations: a request sees the
	// book's current ones (or none), so a memo entry built with an older
	// generation is patched for the profiles changed since, or rebuilt
	// when the book's log no longer reaches back.
	var book limitBook
	setLimit := func(rng *rand.Rand, now time.Time) {
		k := limitKey{owner: []string{"work", store.DefaultAgent}[rng.IntN(2)], profile: fmt.Sprintf("p%02d", rng.IntN(42))}
		if rng.IntN(3) == 0 {
			k.model = "m" + fmt.Sprint(rng.IntN(2))
		}
		f := policy.LimitFacts{Headroom: float64(rng.IntN(11)) / 10, Status: []string{"allowed", "warning", "rejected"}[rng.IntN(3)]}
		if f.Status == "rejected" {
			f.ResetAt = now.Add(time.Duration(1+rng.IntN(600)) * time.Second).UnixMilli()
		}
		book.set(k, f)
	}
	// Usage facts from a real usage store, moving as answers are
	// recorded (a user policy's requests carry them), and two facts made
	// by hand, whose generations log nothing: an entry built with other
	// usage facts is patched for the profiles the store says changed, or
	// rebuilt when the facts cannot say.
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	us, err := usage.Open(filepath.Join(t.TempDir(), "usage.db"), usage.Options{FlushInterval: -1,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	stale := []*usage.Facts{
		{Gen: 1, Profiles: map[usage.ProfileKey]*policy.UsageFacts{{Owner: "work", Profile: "p03"}: {H1: policy.UsageTotals{Requests: 3}}}},
		{Gen: 2, Profiles: map[usage.ProfileKey]*policy.UsageFacts{{Owner: "work", Profile: "p03"}: {H1: policy.UsageTotals{Requests: 4}}, {Owner: "work", Profile: "p06"}: {}}}}

	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	patched, acrossGens, acrossUsage := 0, 0, 0
	for step := range 2500 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		clock.Store(now.UnixNano())
		for range rng.IntN(3) {
			id := fmt.Sprintf("p%02d", rng.IntN(42))
			us.Record(usage.Record{Time: now, Agent: "work", Owner: snap.Owner[id], Provider: "anthropic", Profile: id,
				Model: "m", Status: 200, Usage: usage.Usage{Input: rng.Int64N(300), Output: rng.Int64N(50)}})
		}
		var ops []stateOp
		for range 1 + rng.IntN(3) {
			id := fmt.Sprintf("p%02d", rng.IntN(42)) // p40, p41: no such profile
			op := stateOp{profile: id, at: now}
			switch rng.IntN(8) {
			case 0, 1, 2:
				op.success = true
			case 3:
				op.reason, op.model, op.retryAfter = ReasonRateLimit, "m"+fmt.Sprint(rng.IntN(2)), time.Minute
			case 4:
				op.reason = ReasonAuth
			case 5:
				op.clear = true
			case 6:
				op.lastGood, op.provider = true, providers[rng.IntN(2)]
			case 7:
				op.recent = "openai/gpt-" + fmt.Sprint(rng.IntN(3))
			}
			ops = append(ops, op)
		}
		c.apply([]string{"work", store.DefaultAgent}[rng.IntN(2)], ops)
		switch r := rng.IntN(40); {
		case r < 16:
			for range 1 + rng.IntN(4) {
				setLimit(rng, now)
			}
		case r == 8: // more than the book's log reaches back
			for range 2*limitLog + rng.IntN(limitLog) {
				setLimit(rng, now)
			}
		}
		if rng.IntN(3) == 0 {
			continue // several changes before the next request: a longer chain
		}
		cur := a.snap.Load()
		req := FactsRequest{Provider: providers[rng.IntN(2)], Model: []string{"", "m0", "m1"}[rng.IntN(3)]}
		if rng.IntN(8) != 0 {
			req.Limits = book.Load()
		}
		switch rng.IntN(12) {
		case 0, 1, 2, 3, 4:
			req.Usage = us.Facts()
		case 5:
			req.Usage = stale[rng.IntN(len(stale))]
		}
		if rng.IntN(2) == 0 {
			req.Verdict = verdict
		}
		key := req.factsKey()
		if _, hit := cur.facts.lookup(key, now.UnixMilli(), req.gens()); !hit {
			if e, changed, ok := cur.facts.earlier(key, now.UnixMilli(), req.gens(), req.changedSince); ok {
				patched++
				if e.gen.limits != req.gens().limits {
					acrossGens++
				}
				if e.gen.usage != req.gens().usage {
					acrossUsage++
				}
				checkPatchedAt(t, step, cur, e.list, changed, req, now)
			}
		}
		got := cur.profileList(req, now).Facts()
		fresh := *cur
		fresh.facts = nil
		want, _, _, _ := profileFacts(&fresh, req, now)
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("step %d (%+v): patched facts differ from rebuilt ones at %s:\n got %+v\nwant %+v", step, ops, want[i].ID, got[i], want[i])
				}
			}
			t.Fatalf("step %d: patched facts (%d) differ from rebuilt ones (%d)", step, len(got), len(want))
		}
	}
	if patched < 200 || acrossGens < 100 || acrossUsage < 50 {
		t.Fatalf("only %d of the checks had earlier facts to patch, %d of another limits generation, %d of other usage facts: the test no longer exercises patching",
			patched, acrossGens, acrossUsage)
	}
	t.Logf("%d patched, %d across limits generations, %d across usage generations", patched, acrossGens, acrossUsage)
}

// checkPatchedAt: patchFacts names every fact that differs from base's
// (an index it leaves out would keep base's fact, and base's cache key),
// and the list base.With makes of them has the facts built from scratch.
func checkPatchedAt(t *testing.T, step int, snap *Snapshot, base *policy.ProfileList, changed []string, req FactsRequest, now time.Time) {
	t.Helper()
	at, _ := patchFacts(snap, base, changed, req, now)
	if at == nil {
		t.Fatalf("step %d: patchFacts rebuilt every fact for the same profiles", step)
	}
	fresh := *snap
	fresh.facts = nil
	want, _, _, _ := profileFacts(&fresh, req, now)
	if base.Len() != len(want) {
		t.Fatalf("step %d: base has %d profiles, want %d", step, base.Len(), len(want))
	}
	for i := range want {
		named := slices.ContainsFunc(at, func(f policy.IndexedFact) bool { return f.At == i })
		if !named && !reflect.DeepEqual(*base.At(i), want[i]) {
			t.Fatalf("step %d: %s (index %d) changed but patchFacts names only %v (changed ids %v)", step, want[i].ID, i, at, changed)
		}
	}
	if got := base.With(at).Facts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("step %d: the patched list's facts differ from the rebuilt ones", step)
	}
}
