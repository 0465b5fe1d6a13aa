package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// randomFacts returns a profile with facts drawn around t0: every type and
// status (usable or not), expiries, cooldowns (some scoped to a model),
// disables, client scopes and provider limits, with few distinct values so
// that ties (same type and headroom, same recovery time) are common.
func randomFacts(r *rand.Rand, id string) ProfileFacts {
	pick := func(ss ...string) string { return ss[r.IntN(len(ss))] }
	around := func(span int64) int64 { return t0 + (r.Int64N(2*span+1)-span)*minute }
	p := ProfileFacts{
		ID: id, Provider: "anthropic",
		Type:     pick("oauth", "token", "api_key", "oauth", "token", "api_key", "weird"),
		Status:   pick("ok", "static", "expiring", "ok", "ok", "ok", "expired", "invalid", "missing", "odd"),
		Kind:     pick("api_key", "setup_token", "oauth_access", "unknown"),
		LastUsed: around(50),
	}
	if r.IntN(3) == 0 {
		e := around(3)
		p.ExpiresAt = &e
	}
	if r.IntN(3) == 0 {
		p.CooldownUntil = around(4)
		if r.IntN(2) == 0 {
			m := pick("", "m1", "m2")
			p.CooldownModel = &m
		}
	}
	if r.IntN(4) == 0 {
		p.DisabledUntil = around(4)
		if r.IntN(2) == 0 {
			p.DisabledUntil = 1 << 62 // until further notice
		}
		if r.IntN(2) == 0 {
			why := pick("", "billing", "auth")
			p.DisabledReason = &why
		}
	}
	if r.IntN(4) == 0 {
		s := pick("", "claude-code", "codex")
		p.Scope = &s
	}
	if r.IntN(3) == 0 {
		p.Limits = &LimitFacts{Headroom: float64(r.IntN(3)) / 2, Status: pick("allowed", "warning", "rejected", ""), ResetAt: around(4)}
	}
	p.ErrorCount = r.IntN(3)
	return p
}

// mutate changes one thing about in: a profile's facts, the profile set,
// the clock, the request, the order or the session.
func mutate(r *rand.Rand, in *Input, ids *int) {
	newID := func() string { *ids++; return fmt.Sprintf("anthropic:p%02d", *ids%40) }
	someID := func() string {
		if len(in.Profiles) == 0 || r.IntN(5) == 0 {
			return []string{"anthropic:ghost", "openai:elsewhere", newID()}[r.IntN(3)]
		}
		return in.Profiles[r.IntN(len(in.Profiles))].ID
	}
	ids4 := func() []string {
		var out []string
		for range r.IntN(5) {
			out = append(out, someID())
		}
		return out
	}
	switch r.IntN(12) {
	case 0, 1, 2:
		if len(in.Profiles) > 0 {
			i := r.IntN(len(in.Profiles))
			in.Profiles[i] = randomFacts(r, in.Profiles[i].ID)
		}
	case 3:
		if len(in.Profiles) > 0 {
			p := &in.Profiles[r.IntN(len(in.Profiles))]
			p.CooldownUntil = in.Now + (r.Int64N(3)-1)*minute // a cooldown toggling
		}
	case 4:
		id := newID()
		if !slices.ContainsFunc(in.Profiles, func(p ProfileFacts) bool { return p.ID == id }) {
			in.Profiles = append(in.Profiles, randomFacts(r, id))
		}
	case 5:
		if len(in.Profiles) > 0 {
			in.Profiles = slices.Delete(in.Profiles, 0, 1+r.IntN(min(3, len(in.Profiles))))
		}
	case 6:
		in.Now += (r.Int64N(5) - 2) * minute / 2
	case 7:
		in.Request.Model = []string{"m1", "m2", "m3"}[r.IntN(3)]
		in.Request.Client.Name = []string{"", "claude-code", "codex"}[r.IntN(3)]
	case 8:
		in.Order.Store, in.Order.Config = nil, nil
		switch r.IntN(3) {
		case 1:
			in.Order.Store = ids4()
		case 2:
			in.Order.Config = ids4()
		}
	case 9:
		switch r.IntN(3) {
		case 0:
			in.Session.Pin = nil
		case 1:
			in.Session.Pin = &Pin{Profile: someID(), Source: "user"}
		case 2:
			in.Session.Pin = &Pin{Profile: someID(), Source: "auto"}
		}
	case 10:
		in.Session.ID = fmt.Sprintf("s%d", r.IntN(1000))
		in.Session.New = r.IntN(4) == 0
	case 11:
		r.Shuffle(len(in.Profiles), func(i, j int) { in.Profiles[i], in.Profiles[j] = in.Profiles[j], in.Profiles[i] })
	}
}

// TestSplitDecides: the split evaluation (classes cached per profile, the
// decision assembled in Go) gives exactly the decision of the whole Rego
// evaluation, over long random walks through facts, profile sets, the
// clock, models, clients, explicit orders, pins and sessions, so that
// cached classes are reused, expire and are replaced along the way.
func TestSplitDecides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	split := newEngine(t, Options{CacheSize: -1})
	whole := split.set.Load()
	if whole.split == nil {
		t.Fatal("the built-in policy set has no split evaluation")
	}
	steps, walks := 300, 5
	if testing.Short() {
		steps = 100
	}
	compared := 0
	for w := range walks {
		r := rand.New(rand.NewPCG(uint64(w), 13))
		in := baseInput()
		in.Profiles = nil
		ids := 0
		for range 1 + r.IntN(20) {
			mutate(r, in, &ids) // a few changes of every kind
			in.Profiles = append(in.Profiles, randomFacts(r, fmt.Sprintf("anthropic:p%02d", ids%40)))
			ids++
		}
		in.Profiles = slices.CompactFunc(in.Profiles, func(a, b ProfileFacts) bool { return a.ID == b.ID })
		for step := range steps {
			mutate(r, in, &ids)
			want, werr := whole.eval(ctx, in, nil)
			got, gerr := split.Decide(ctx, in)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("walk %d step %d: split error %v, whole error %v", w, step, gerr, werr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("walk %d step %d: input %s\nsplit %+v\nwhole %+v", w, step, describe(in), got, want)
			}
			compared++
		}
	}
	if st := split.Stats(); st.Evaluations != uint64(compared) {
		t.Fatalf("%d evaluations for %d decisions with the decision cache off", st.Evaluations, compared)
	}
}

func describe(in *Input) string {
	s := fmt.Sprintf("now=%d model=%s client=%s order=%v/%v pin=%+v new=%v\n", in.Now, in.Request.Model, in.Request.Client.Name, in.Order.Store, in.Order.Config, in.Session.Pin, in.Session.New)
	for _, p := range in.Profiles {
		s += fmt.Sprintf("  %s %s/%s exp=%v cd=%d cdm=%v dis=%d scope=%v limits=%+v\n", p.ID, p.Type, p.Status, deref(p.ExpiresAt), p.CooldownUntil, deref(p.CooldownModel), p.DisabledUntil, deref(p.Scope), p.Limits)
	}
	return s
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestSplitReusesClasses: a decision after one profile's facts changed
// classifies that profile only (the rest come from the class cache), and
// a request for another model or from another client reclassifies only
// the profiles whose class can depend on it.
func TestSplitReusesClasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, Options{CacheSize: -1})
	in := benchInput(50)
	model := "m1"
	in.Profiles[3].CooldownModel = &model
	in.Profiles[3].CooldownUntil = t0 + minute
	decide(t, e, in)
	classified := func(f func()) int {
		before := classEntries(e)
		f()
		if _, err := e.Decide(ctx, in); err != nil {
			t.Fatal(err)
		}
		after := classEntries(e)
		n := 0
		for id, c := range after {
			if before[id] != c {
				n++
			}
		}
		return n
	}
	if n := classified(func() { in.Profiles[10].CooldownUntil = t0 + 3*minute }); n != 1 {
		t.Errorf("one cooldown set: %d profiles classified, want 1", n)
	}
	if n := classified(func() { in.Request.Model = "m2"; in.Session.ID = "s-other" }); n != 1 {
		t.Errorf("another model and session: %d profiles classified, want 1 (the one with a model-scoped cooldown)", n)
	}
	if n := classified(func() { in.Now = t0 + minute }); n != 1 {
		t.Errorf("the clock passed one profile's cooldown end: %d profiles classified, want 1", n)
	}
	if n := classified(func() { in.Profiles[20].LastUsed++ }); n != 0 {
		t.Errorf("lastUsed moved: %d profiles classified, want 0", n)
	}
	// Another agent whose profile of the same id has other facts (its own
	// limits): each keeps its class, so alternating costs nothing.
	other := clone(in)
	other.Agent.ID = "work"
	other.Profiles[5].Limits = &LimitFacts{Headroom: 0.2, Status: "allowed"}
	if _, err := e.Decide(ctx, other); err != nil {
		t.Fatal(err)
	}
	if n := classified(func() {}); n != 0 {
		t.Errorf("back to the first agent: %d profiles classified, want 0", n)
	}
}

// TestSplitSharesClassesOfEqualFacts: profiles whose facts are equal but
// for the id get one class between them (classified once), each still
// decided as the whole evaluation decides it.
func TestSplitSharesClassesOfEqualFacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, Options{CacheSize: -1})
	in := benchInput(100) // 3 types, every 7th cooling to its own time
	in.Order.Config = []string{"anthropic:p005", "anthropic:p002"}
	for _, order := range []bool{false, true} {
		if !order {
			in.Order.Config = nil
		}
		e.class.mu.Lock()
		e.class.m = nil
		e.class.mu.Unlock()
		got := decide(t, e, in)
		want, err := e.set.Load().eval(ctx, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v: split %+v\nwhole %+v", order, got, want)
		}
		distinct := map[string]bool{}
		for i := range in.Profiles {
			p := in.Profiles[i]
			p.ID, p.LastUsed = "", 0
			if order { // the order positions are part of the class
				p.ID = strconv.Itoa(slices.Index(in.Order.Config, in.Profiles[i].ID))
			}
			distinct[fmt.Sprintf("%+v", p)] = true
		}
		if n := len(classEntries(e)); n != len(distinct) || n >= len(in.Profiles)/2 {
			t.Errorf("order %v: %d classes for %d profiles of %d distinct facts", order, n, len(in.Profiles), len(distinct))
		}
		in.Order.Config = []string{"anthropic:p005", "anthropic:p002"}
	}
}

func classEntries(e *Engine) map[string]*classEntry {
	e.class.mu.Lock()
	defer e.class.mu.Unlock()
	out := make(map[string]*classEntry, len(e.class.m))
	for k, c := range e.class.m {
		out[k] = c
	}
	return out
}

// classBases are inputs with every field set (so every change of
// TestClassKeyNoticesEveryField applies) whose first profile is, in turn,
// cooling for the request's model, outside the explicit order, scoped to
// another client, and a candidate.
func classBases() map[string]*Input {
	mk := func(f func(in *Input)) *Input {
		in := filledInput()
		in.Now = t0
		in.Request.Provider, in.Request.Model, in.Request.Client.Name = "anthropic", "m1", "codex"
		for i, typ := range []string{"token", "oauth"} {
			p := &in.Profiles[i]
			p.ID, p.Provider, p.Type, p.Status = fmt.Sprintf("anthropic:p%d", i), "anthropic", typ, "ok"
			*p.ExpiresAt, p.CooldownUntil, *p.CooldownModel = t0+2*minute, t0+minute, "m1"
			p.DisabledUntil, *p.Scope = t0-minute, "codex"
			*p.Limits = LimitFacts{Headroom: 0.5, Status: "allowed", ResetAt: t0 + 3*minute}
		}
		in.Order.Store = []string{"anthropic:p1", "anthropic:p0"}
		in.Session.Pin = &Pin{Profile: "anthropic:p0", Source: "auto"}
		f(in)
		return in
	}
	return map[string]*Input{
		"cooling for the model":    mk(func(*Input) {}),
		"outside the order":        mk(func(in *Input) { in.Order.Store = []string{"anthropic:x", "anthropic:p1"} }),
		"scoped to another client": mk(func(in *Input) { *in.Profiles[0].Scope = "claude-code" }),
		"a candidate": mk(func(in *Input) {
			in.Profiles[0].CooldownUntil = t0 - minute
			in.Session.Pin = &Pin{Profile: "anthropic:p1", Source: "user"}
		}),
	}
}

// TestClassKeyNoticesEveryField is the class cache's guard, in the
// manner of TestCacheNoticesEveryField: it changes every field of the
// input in turn (found by reflection, so a field added later is covered
// without anyone remembering this test), clock included, and checks that
// every profile whose cached class would still be served (the same class
// key, the new clock within the class's interval) gets the class a fresh
// classification gives. And a change to any of the first profile's facts
// the built-in policy reads must change its key.
func TestClassKeyNoticesEveryField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set := newEngine(t, Options{}).set.Load()
	classesOf := func(in *Input) map[string]class {
		out := make([]class, len(in.Profiles))
		idx := make([]int, len(in.Profiles))
		for i := range idx {
			idx[i] = i
		}
		if err := set.classify(ctx, in, nil, idx, out); err != nil {
			t.Fatal(err)
		}
		m := map[string]class{}
		for i, c := range out {
			m[in.Profiles[i].ID] = c
		}
		return m
	}
	keysOf := func(in *Input) map[string]string {
		cx := newClassContext(in)
		m := map[string]string{}
		for i := range in.Profiles {
			m[in.Profiles[i].ID] = string(appendClassKey(nil, &in.Profiles[i], cx))
		}
		return m
	}
	served, reclassified := 0, 0
	for name, base := range classBases() {
		bk, bc := keysOf(base), classesOf(base)
		for _, l := range leaves(t) {
			for how, change := range changes(l, base) {
				in := clone(base)
				change(in)
				ak, ac := keysOf(in), classesOf(in)
				for i := range in.Profiles {
					p := &in.Profiles[i]
					if _, ok := bk[p.ID]; !ok {
						continue
					}
					var was *ProfileFacts
					for j := range base.Profiles {
						if base.Profiles[j].ID == p.ID {
							was = &base.Profiles[j]
						}
					}
					lo, hi := profileValidity(was, base.Now)
					if ak[p.ID] != bk[p.ID] || in.Now < lo || in.Now >= hi {
						reclassified++
						continue
					}
					served++
					if !sameClass(ac[p.ID], bc[p.ID]) {
						t.Errorf("%s, %s %s: profile %s keeps its class key and interval but its class changed from %+v to %+v; add what it depends on to appendClassKey (policy/split.go)", name, l.path, how, p.ID, bc[p.ID], ac[p.ID])
					}
				}
				// The facts named in builtinUnread (lastUsed, usage…) are
				// never read by the built-in policy
				// (TestBuiltinReadsNoUnkeyedFact), so they need not change
				// a built-in class key.
				if strings.HasPrefix(l.path, "Profiles[0].") && !unreadByBuiltin(l.path) &&
					in.Profiles[0].ID == base.Profiles[0].ID &&
					ak[base.Profiles[0].ID] == bk[base.Profiles[0].ID] {
					t.Errorf("%s, %s %s: the first profile's class key did not change", name, l.path, how)
				}
			}
		}
	}
	if served < 100 || reclassified < 100 {
		t.Fatalf("%d classes served from the cache, %d reclassified: the test proves little", served, reclassified)
	}
	// The key leaves the id out, so profiles of equal facts share a
	// class: renaming a profile (in the order too, so it keeps its
	// position) must keep its key and its class.
	renamed := 0
	for name, base := range classBases() {
		bk, bc := keysOf(base), classesOf(base)
		for i := range base.Profiles {
			in := clone(base)
			old, id := in.Profiles[i].ID, in.Profiles[i].ID+"-renamed"
			in.Profiles[i].ID = id
			for _, order := range [][]string{in.Order.Store, in.Order.Config} {
				for j := range order {
					if order[j] == old {
						order[j] = id
					}
				}
			}
			if keysOf(in)[id] != bk[old] {
				t.Errorf("%s: renaming %s changed its class key", name, old)
			}
			if c := classesOf(in)[id]; !sameClass(c, bc[old]) {
				t.Errorf("%s: renaming %s changed its class from %+v to %+v: a class must not depend on the profile's id (appendClassKey leaves it out)", name, old, bc[old], c)
			}
			renamed++
		}
	}
	if renamed < 4 {
		t.Fatalf("%d profiles renamed: the test proves little", renamed)
	}
}

// unreadByBuiltin reports whether a leaf path (Profiles[0].Usage.X) goes
// through a field builtinUnread names (by its JSON name: usage).
func unreadByBuiltin(path string) bool {
	for _, part := range strings.Split(path, ".") {
		part, _, _ = strings.Cut(part, "[")
		if part != "" && slices.Contains(builtinUnread, strings.ToLower(part[:1])+part[1:]) {
			return true
		}
	}
	return false
}

func sameClass(a, b class) bool {
	eq := func(x, y ast.Value) bool {
		return x == nil && y == nil || x != nil && y != nil && ast.Compare(x, y) == 0
	}
	return a.state == b.state && a.reason == b.reason && a.out == b.out && eq(a.until, b.until) && eq(a.key, b.key)
}

// TestSplitConcurrent: goroutines deciding different, changing inputs on
// one engine share its class cache and each still gets the whole
// evaluation's decision (run with -race).
func TestSplitConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, Options{CacheSize: -1})
	whole := e.set.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			in := benchInput(15)
			ids := 0
			for step := range 60 {
				mutate(r, in, &ids)
				want, werr := whole.eval(ctx, in, nil)
				got, gerr := e.Decide(ctx, in)
				if (werr != nil) != (gerr != nil) || !reflect.DeepEqual(got, want) {
					errs <- fmt.Errorf("goroutine %d step %d: split %+v (%v), whole %+v (%v)", g, step, got, gerr, want, werr)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClassCacheBound: the class cache stays within its bound under
// churn, and when it starts over it keeps the classes of the profiles in
// use, so the next decision evaluates only what changed.
func TestClassCacheBound(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{CacheSize: -1})
	e.class.max = 100
	in := benchInput(60)
	for i := range in.Profiles {
		in.Profiles[i].ErrorCount = i // no two of equal facts: each its own class
	}
	decide(t, e, in)
	restarted := false
	for step := 0; !restarted; step++ {
		if step > 20 {
			t.Fatal("the class cache never started over")
		}
		prev := len(classEntries(e))
		for j := range 10 {
			in.Profiles[j].CooldownUntil = t0 + minute + int64(step) // never seen before
		}
		decide(t, e, in)
		n := len(classEntries(e))
		if n > e.class.max {
			t.Fatalf("step %d: %d classes cached, bound %d", step, n, e.class.max)
		}
		restarted = n < prev
	}
	before := classEntries(e)
	if len(before) != len(in.Profiles) {
		t.Fatalf("started over with %d classes; want the %d in use", len(before), len(in.Profiles))
	}
	in.Profiles[59].CooldownUntil = t0 + 2*minute
	decide(t, e, in)
	changed := 0
	for k, c := range classEntries(e) {
		if before[k] != c {
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("after the cache started over, one cooldown set: %d classes evaluated, want 1", changed)
	}
}

// TestUserPolicyEvaluatesWhole: with a user policy loaded the engine has
// no split evaluation (a user rule may read any fact), and the user's rule
// decides; after the file is removed and reloaded, the split is back.
func TestUserPolicyEvaluatesWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "a.rego")
	writeFile(t, file, "package opensoul.rules\nprefer contains \"anthropic:key\"\n")
	e := newEngine(t, Options{Dirs: []string{dir}, CacheSize: -1})
	if e.set.Load().split != nil {
		t.Fatal("a user policy is loaded but the engine would split the evaluation")
	}
	if d := decide(t, e, baseInput()); d.Candidates[0] != "anthropic:key" {
		t.Fatalf("candidates %v: the user's prefer did not decide", d.Candidates)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if e.set.Load().split == nil {
		t.Fatal("only built-in policies again, but no split evaluation")
	}
	if d := decide(t, e, baseInput()); d.Candidates[0] == "anthropic:key" {
		t.Fatalf("candidates %v: the removed prefer still decides", d.Candidates)
	}
}
