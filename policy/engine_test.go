package policy

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const minute = int64(60_000)

// t0 is Tuesday 2025-11-25T01:00:00Z.
const t0 = int64(1764032400000)

func baseInput() *Input {
	return &Input{
		Now:     t0,
		Agent:   AgentFacts{ID: "main"},
		Session: SessionFacts{ID: "s1"},
		Request: RequestFacts{Provider: "anthropic", Model: "claude-sonnet-5", API: "anthropic-messages", Stream: true},
		Profiles: []ProfileFacts{
			{ID: "anthropic:key", Provider: "anthropic", Type: "api_key", Status: "static", Kind: "api_key"},
			{ID: "anthropic:work", Provider: "anthropic", Type: "token", Status: "ok", Kind: "setup_token", LastUsed: t0 - minute},
			{ID: "anthropic:me@example.com", Provider: "anthropic", Type: "oauth", Status: "ok", Kind: "oauth_access"},
		},
		Env: []EnvFacts{{Var: "ANTHROPIC_API_KEY", Type: "api_key"}},
	}
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.Timeout == 0 {
		// Under -race on a loaded machine one evaluation can exceed
		// DefaultTimeout; only TestDecideTimeout is about the bound.
		opts.Timeout = time.Minute
	}
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func decide(t testing.TB, e *Engine, in *Input) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNewLoadsBuiltinAndUserFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.rego"), "package opensoul.rules\nprefer contains \"anthropic:key\"\n")
	writeFile(t, filepath.Join(dir, "a_test.rego"), "package opensoul.rules_test\ntest_x if true\n")
	writeFile(t, filepath.Join(dir, "sub", "b.rego"), "package opensoul.rules\n")
	writeFile(t, filepath.Join(dir, ".hidden", "c.rego"), "this is not rego")
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a policy")
	e := newEngine(t, Options{Dirs: []string{dir, filepath.Join(dir, "missing")}})
	want := []string{"builtin/select.rego", filepath.Join(dir, "a.rego"), filepath.Join(dir, "sub", "b.rego")}
	if got := e.Files(); !slices.Equal(got, want) {
		t.Fatalf("Files() = %q, want %q", got, want)
	}
	if d := decide(t, e, baseInput()); d.Candidates[0] != "anthropic:key" {
		t.Fatalf("user prefer not applied: %v", d.Candidates)
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		{"syntax", "package opensoul.rules\n\nprefer contains x if {\n\tx := := 1\n}\n", []string{"bad.rego:4:7", "rego_parse_error"}},
		{"v0 syntax", "package opensoul.rules\n\nprefer[x] { x := \"a\" }\n", []string{"bad.rego:3:", "rego_parse_error"}},
		{"unsafe var", "package opensoul.rules\n\nprefer contains x if { y := 1 }\n", []string{"bad.rego:3:", "var x is unsafe"}},
		{"http.send", "package opensoul.rules\n\nprefer contains x if {\n\tr := http.send({\"method\": \"get\", \"url\": \"http://example.com\"})\n\tx := r.body\n}\n",
			[]string{"bad.rego:4:7", "undefined function http.send", "removed: policies run without network or runtime access"}},
		{"net.lookup_ip_addr", "package opensoul.rules\n\nprefer contains x if {\n\tsome x in net.lookup_ip_addr(\"example.com\")\n}\n",
			[]string{"bad.rego:4:", "undefined function net.lookup_ip_addr", "removed"}},
		{"net.cidr_contains", "package opensoul.rules\n\nprefer contains \"a\" if net.cidr_contains(\"10.0.0.0/8\", \"10.1.2.3\")\n",
			[]string{"bad.rego:3:", "undefined function net.cidr_contains"}},
		{"opa.runtime", "package opensoul.rules\n\nprefer contains x if {\n\tx := opa.runtime().env.HOME\n}\n",
			[]string{"bad.rego:4:", "undefined function opa.runtime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "bad.rego"), tt.text)
			_, err := New(context.Background(), Options{Dirs: []string{dir}})
			if err == nil {
				t.Fatal("New succeeded, want a compile error")
			}
			var ce CompileErrors
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, want CompileErrors", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if ce[0].Line == 0 || ce[0].Col == 0 || !strings.HasSuffix(ce[0].File, "bad.rego") {
				t.Errorf("error not located: %+v", ce[0])
			}
			if tt.name != "http.send" {
				return
			}
			// Check and Test report the same problem.
			if _, err := Check(context.Background(), []string{dir}); err == nil {
				t.Error("Check succeeded on a bad policy")
			}
			if _, err := Test(context.Background(), []string{dir}, &strings.Builder{}, false); err == nil {
				t.Error("Test succeeded on a bad policy")
			}
		})
	}
}

func TestDecideRejectsBadDecisions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want string
	}{
		{"unknown profile", "package opensoul.select\n\nuser_pin := \"anthropic:ghost\" if input.agent.id == \"main\"\n", `reasons: unknown profile "anthropic:ghost"`},
		{"wrong type", "package opensoul.select\n\nstrict := \"yes\" if input.agent.id == \"main\"\n", "strict: want a boolean, got string"},
		{"conflict", "package opensoul.select\n\ncandidates := [\"anthropic:key\"] if input.agent.id == \"main\"\n", "eval_conflict_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "override.rego"), tt.text)
			e, err := New(context.Background(), Options{Dirs: []string{dir}})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			_, err = e.Decide(context.Background(), baseInput())
			var de *DecisionError
			if !errors.As(err, &de) || de.Rule != DecisionRule {
				t.Fatalf("err = %v, want a *DecisionError for %s", err, DecisionRule)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), DecisionRule) {
				t.Fatalf("err = %q, want it to name %s and contain %q", err, DecisionRule, tt.want)
			}
		})
	}
}

func TestDecideNilInput(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{})
	if _, err := e.Decide(context.Background(), nil); err == nil {
		t.Fatal("Decide(nil) succeeded")
	}
}

// TestCacheInvalidation changes one fact at a time and checks that the
// cached engine answers exactly as an uncached one, and that the change
// did alter the decision (so a stale entry would have been caught).
func TestCacheInvalidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		before func(*Input)
		after  func(*Input)
	}{
		{"cooldown expiry",
			func(in *Input) { in.Profiles[2].CooldownUntil = t0 + minute },
			func(in *Input) { in.Now = t0 + minute }},
		{"disabled expiry",
			func(in *Input) { in.Profiles[2].DisabledUntil = t0 + 5*minute },
			func(in *Input) { in.Now = t0 + 5*minute + 1 }},
		{"token expiry",
			func(in *Input) { e := t0 + 2*minute; in.Profiles[1].ExpiresAt = &e },
			func(in *Input) { in.Now = t0 + 2*minute }},
		{"clock going backwards into a cooldown",
			func(in *Input) { in.Profiles[2].CooldownUntil = t0; in.Now = t0 + minute },
			func(in *Input) { in.Now = t0 - 1 }},
		{"new profile",
			func(*Input) {},
			func(in *Input) {
				in.Profiles = append(in.Profiles, ProfileFacts{ID: "anthropic:b@example.com", Type: "oauth", Status: "ok"})
			}},
		{"user pin set",
			func(*Input) {},
			func(in *Input) { in.Session.Pin = &Pin{Profile: "anthropic:key", Source: "user"} }},
		{"pin source changed",
			func(in *Input) { in.Session.Pin = &Pin{Profile: "anthropic:key", Source: "auto"} },
			func(in *Input) { in.Session.Pin.Source = "user" }},
		{"store order set",
			func(*Input) {},
			func(in *Input) { in.Order.Store = []string{"anthropic:key"} }},
		{"config order changed",
			func(in *Input) { in.Order.Config = []string{"anthropic:key", "anthropic:work"} },
			func(in *Input) { in.Order.Config = []string{"anthropic:work", "anthropic:key"} }},
		{"cooldown cleared by hand",
			func(in *Input) { in.Profiles[2].CooldownUntil = t0 + minute },
			func(in *Input) { in.Profiles[2].CooldownUntil = 0 }},
		{"status changed",
			func(*Input) {},
			func(in *Input) { in.Profiles[2].Status = "invalid" }},
		{"new session",
			func(in *Input) { in.Session.Pin = &Pin{Profile: "anthropic:key", Source: "auto"} },
			func(in *Input) { in.Session.New = true }},
		{"model scope of a cooldown",
			func(in *Input) {
				m := "claude-opus-5"
				in.Profiles[2].CooldownUntil = t0 + minute
				in.Profiles[2].CooldownModel = &m
			},
			func(in *Input) { in.Request.Model = "claude-opus-5" }},
	}
	cached := newEngine(t, Options{})
	oracle := newEngine(t, Options{CacheSize: -1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput()
			tt.before(in)
			first := decide(t, cached, in)
			if again := decide(t, cached, in); !equalDecision(first, again) {
				t.Fatalf("same input, different answers: %+v vs %+v", first, again)
			}
			tt.after(in)
			got := decide(t, cached, in)
			want, err := oracle.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !equalDecision(got, want) {
				t.Fatalf("cached decision is stale:\n got %+v\nwant %+v", got, want)
			}
			if equalDecision(first, want) {
				t.Fatalf("the change did not alter the decision; the case proves nothing: %+v", want)
			}
		})
	}
}

func TestCacheServesUnchangedFacts(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{})
	in := baseInput()
	in.Profiles[2].CooldownUntil = t0 + minute
	decide(t, e, in)
	n := e.evals.Load()
	for _, now := range []int64{t0, t0 + 1, t0 + minute - 1} {
		in.Now = now
		decide(t, e, in)
	}
	if got := e.evals.Load() - n; got != 0 {
		t.Fatalf("%d evaluations while no boundary was crossed, want 0", got)
	}
	in.Now = t0 + minute
	decide(t, e, in)
	if got := e.evals.Load() - n; got != 1 {
		t.Fatalf("%d evaluations after crossing the cooldown boundary, want 1", got)
	}
}

func TestClockReadingPoliciesAreNotCached(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{Dirs: []string{"../policies/examples/working_hours_tokens.rego"}})
	in := baseInput()
	in.Now = t0 + 9*60*minute // Tuesday 10:00 UTC
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:work" {
		t.Fatalf("in working hours, first = %s, want the token", d.Candidates[0])
	}
	in.Now = t0 + 18*60*minute // Tuesday 19:00 UTC, nothing else changed
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:me@example.com" {
		t.Fatalf("after hours, first = %s, want the oauth profile", d.Candidates[0])
	}
}

func TestVolatileRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       string
	}{
		{"input.now", "x if input.now > 0", "input.now"},
		{"whole input", "x if object.get(input, \"now\", 0) > 0", "input"},
		{"computed key", "x if { k := \"now\"; input[k] > 0 }", "input[k]"},
		{"time.now_ns", "x if time.now_ns() > 0", "time.now_ns"},
		{"rand", "x if rand.intn(\"a\", 2) == 0", "rand.intn"},
		{"import", "import input.now as n\nx if n > 0", "import input.now"},
		{"facts only", "x if { some p in input.profiles; p.cooldownUntil > 0; input.agent.id == \"cron\" }", ""},
		{"time of a fact", "x if { some p in input.profiles; time.weekday(p.lastUsed * 1000000) == \"Monday\" }", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, mods, err := compile([]source{{name: "p.rego", text: []byte("package p\n" + tt.body + "\n")}}, capabilities(), false)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := volatileRef(mods["p.rego"]); got != tt.want {
				t.Fatalf("volatileRef = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.rego")
	writeFile(t, file, "package opensoul.rules\nprefer contains \"anthropic:key\"\n")
	e := newEngine(t, Options{Dirs: []string{dir}})
	in := baseInput()
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:key" {
		t.Fatalf("first = %s, want anthropic:key", d.Candidates[0])
	}

	if changed, err := e.Reload(ctx); changed || err != nil {
		t.Fatalf("Reload with no change = %v, %v", changed, err)
	}

	// Same size, same directory: only the content differs.
	writeFile(t, file, "package opensoul.rules\nprefer contains \"anthropic:wrk\"\n")
	writeFile(t, file, "package opensoul.rules\nprefer contains \"anthropic:work\"\n")
	if changed, err := e.Reload(ctx); !changed || err != nil {
		t.Fatalf("Reload after an edit = %v, %v", changed, err)
	}
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:work" {
		t.Fatalf("after edit, first = %s, want anthropic:work (stale cache?)", d.Candidates[0])
	}

	writeFile(t, file, "package opensoul.rules\nprefer contains x if {\n")
	for range 2 { // refused every time, the old set kept
		changed, err := e.Reload(ctx)
		var ce CompileErrors
		if changed || !errors.As(err, &ce) {
			t.Fatalf("Reload of a broken file = %v, %v; want false and CompileErrors", changed, err)
		}
		if d := decide(t, e, in); d.Candidates[0] != "anthropic:work" {
			t.Fatalf("after a refused reload, first = %s, want anthropic:work", d.Candidates[0])
		}
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if changed, err := e.Reload(ctx); !changed || err != nil {
		t.Fatalf("Reload after removing the file = %v, %v", changed, err)
	}
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:me@example.com" {
		t.Fatalf("after removal, first = %s, want the built-in order", d.Candidates[0])
	}
	if got := e.Files(); !slices.Equal(got, []string{"builtin/select.rego"}) {
		t.Fatalf("Files() = %q", got)
	}
}

// TestSetDirs: a changed policy.dirs takes effect at the next Reload; a
// directory whose policies do not compile is refused like any broken edit.
func TestSetDirs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, broken := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "rules.rego"), "package opensoul.rules\nprefer contains \"anthropic:key\"\n")
	writeFile(t, filepath.Join(b, "rules.rego"), "package opensoul.rules\nprefer contains \"anthropic:work\"\n")
	writeFile(t, filepath.Join(broken, "rules.rego"), "package opensoul.rules\nprefer contains x if {\n")
	e := newEngine(t, Options{Dirs: []string{a}})
	in := baseInput()
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:key" {
		t.Fatalf("first = %s, want anthropic:key", d.Candidates[0])
	}

	e.SetDirs([]string{b})
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:key" {
		t.Fatalf("before Reload, first = %s; the set in force must stay until then", d.Candidates[0])
	}
	if changed, err := e.Reload(ctx); !changed || err != nil {
		t.Fatalf("Reload after SetDirs = %v, %v", changed, err)
	}
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:work" {
		t.Fatalf("after SetDirs, first = %s, want anthropic:work", d.Candidates[0])
	}
	if got := e.Files(); !slices.Equal(got, []string{"builtin/select.rego", filepath.Join(b, "rules.rego")}) {
		t.Fatalf("Files() = %q", got)
	}

	e.SetDirs([]string{broken})
	var ce CompileErrors
	if changed, err := e.Reload(ctx); changed || !errors.As(err, &ce) {
		t.Fatalf("Reload of a broken directory = %v, %v; want false and CompileErrors", changed, err)
	}
	if d := decide(t, e, in); d.Candidates[0] != "anthropic:work" {
		t.Fatalf("after a refused directory, first = %s, want anthropic:work", d.Candidates[0])
	}
}

func TestConcurrentDecideAndReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.rego")
	rules := []string{
		"package opensoul.rules\nprefer contains \"anthropic:key\"\n",
		"package opensoul.rules\nprefer contains \"anthropic:work\"\n",
	}
	writeFile(t, file, rules[0])
	e := newEngine(t, Options{Dirs: []string{dir}, CacheSize: 8})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			in := baseInput()
			for i := range 50 {
				in.Now = t0 + int64(i)
				in.Profiles[1].LastUsed = int64(g*1000 + i%20) // vary the key
				d, err := e.Decide(ctx, in)
				if err != nil {
					t.Error(err)
					return
				}
				if first := d.Candidates[0]; first != "anthropic:key" && first != "anthropic:work" {
					t.Errorf("first = %s", first)
					return
				}
			}
		})
	}
	for i := range 6 {
		writeFile(t, file, rules[i%2])
		if _, err := e.Reload(ctx); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func equalDecision(a, b Decision) bool {
	if !slices.Equal(a.Candidates, b.Candidates) || !slices.Equal(a.Cooling, b.Cooling) || a.Strict != b.Strict || len(a.Reasons) != len(b.Reasons) {
		return false
	}
	for k, v := range a.Reasons {
		if b.Reasons[k] != v {
			return false
		}
	}
	return true
}

// TestCacheKeysLastUsedForUserPolicies: the built-in policy does not read
// lastUsed, so moving a profile's time (even past another's) is a cache
// hit; with a user policy loaded (which could read the value) it is a
// miss, and the answer follows it.
func TestCacheKeysLastUsedForUserPolicies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "recent.rego"),
		"package opensoul.rules\n\ndeny contains {\"profile\": p.id, \"reason\": \"used in the last minute\"} if {\n\tsome p in input.profiles\n\tp.lastUsed > 1764032400000\n}\n")
	tests := []struct {
		name      string
		dirs      []string
		wantEvals uint64
		wantFirst string
	}{
		{"built-in only", nil, 0, "anthropic:work"},
		{"with a user policy", []string{dir}, 1, "anthropic:key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, Options{Dirs: tt.dirs})
			in := baseInput()
			in.Profiles[2].Status = "invalid" // leave the token and the api key
			if d := decide(t, e, in); d.Candidates[0] != "anthropic:work" {
				t.Fatalf("first = %v", d.Candidates)
			}
			n := e.evals.Load()
			in.Profiles[1].LastUsed = t0 + minute
			in.Now = t0 + minute
			d := decide(t, e, in)
			if got := e.evals.Load() - n; got != tt.wantEvals {
				t.Errorf("%d evaluations, want %d", got, tt.wantEvals)
			}
			if d.Candidates[0] != tt.wantFirst {
				t.Errorf("first = %v, want %s", d.Candidates, tt.wantFirst)
			}
		})
	}
}

// TestCacheMatchesUncached drives a caching engine and an uncached one
// with a random walk of inputs (small value ranges, so states and cache
// entries recur) and requires identical answers every time.
func TestCacheMatchesUncached(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cached := newEngine(t, Options{CacheSize: 64})
	oracle := newEngine(t, Options{CacheSize: -1})
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	in := baseInput()
	for i := range 200 {
		in.Now = t0 + int64(rng.IntN(4))*minute
		p := &in.Profiles[rng.IntN(len(in.Profiles))]
		switch rng.IntN(7) {
		case 0:
			p.LastUsed = t0 + int64(rng.IntN(3))*minute
		case 1:
			p.CooldownUntil = t0 + int64(rng.IntN(4))*minute
		case 2:
			p.DisabledUntil = t0 + int64(rng.IntN(4))*minute
		case 3:
			p.Status = pick("ok", "static", "expired")
		case 4:
			in.Session.Pin = []*Pin{nil, {Profile: p.ID, Source: "user"}, {Profile: p.ID, Source: "auto"}}[rng.IntN(3)]
		case 5:
			in.Order.Store = [][]string{nil, {p.ID}, {"anthropic:work", "anthropic:key"}}[rng.IntN(3)]
		case 6:
			e := t0 + int64(rng.IntN(4))*minute
			p.ExpiresAt = []*int64{nil, &e}[rng.IntN(2)]
		}
		got, err1 := cached.Decide(ctx, in)
		want, err2 := oracle.Decide(ctx, in)
		if err1 != nil || err2 != nil {
			t.Fatalf("step %d: %v / %v", i, err1, err2)
		}
		if !equalDecision(got, want) {
			t.Fatalf("step %d: cached %+v\nuncached %+v", i, got, want)
		}
	}
	t.Logf("%d of 200 decisions evaluated", cached.evals.Load())
	if n := cached.evals.Load(); n >= 200 {
		t.Errorf("the cache never hit (%d evaluations)", n)
	}
}

// TestDecideTimeout: a policy that does too much work fails the request
// with an error that says so, instead of holding it; the caller's own
// cancellation is reported as such.
func TestDecideTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "slow.rego"), `package opensoul.rules

prefer contains id if {
	some i in numbers.range(1, 50000)
	some j in numbers.range(1, 50000)
	id := sprintf("anthropic:%d", [i * j])
}
`)
	e := newEngine(t, Options{Dirs: []string{dir}, Timeout: 20 * time.Millisecond})
	e.wall = 1000 // a loaded machine may give the loop its 20ms of CPU slowly
	_, err := e.Decide(context.Background(), baseInput())
	var de *DecisionError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "used more than 20ms of CPU time (policy.timeoutMs)") {
		t.Fatalf("err = %v, want a DecisionError about the CPU bound", err)
	}

	// A runaway policy that gets no CPU at all (the meter says so) still
	// ends, at the wall-clock backstop.
	e.meter = func() (func() time.Duration, func()) { return func() time.Duration { return 0 }, func() {} }
	e.wall = 0
	_, err = e.Decide(context.Background(), baseInput())
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "took longer than 400ms (20 × policy.timeoutMs") {
		t.Fatalf("err = %v, want a DecisionError about the wall-clock backstop", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Decide(ctx, baseInput()); err == nil || strings.Contains(err.Error(), "took longer") {
		t.Fatalf("cancelled caller: err = %v, want the cancellation, not the time bound", err)
	}

	e.SetTimeout(time.Minute)
	e.SetTimeout(0)
	if got := time.Duration(e.timeout.Load()); got != DefaultTimeout {
		t.Fatalf("SetTimeout(0) = %v, want DefaultTimeout", got)
	}
}

// TestBusyMachineNoTimeout: time an evaluation spends waiting for a CPU
// does not count against policy.timeoutMs. The evaluation is held off the
// CPU (blocked, as a descheduled goroutine would be) until the budget has
// been checked twice, so twice the bound has passed on the wall clock; the
// thread's CPU clock shows the bound unspent and the decision is made.
// Nothing here depends on how fast the machine is.
func TestBusyMachineNoTimeout(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{CacheSize: -1, Timeout: 100 * time.Millisecond})
	checks := make(chan time.Duration, 16)
	e.check = func(used time.Duration) { checks <- used }
	e.pause = func() { <-checks; <-checks }
	if _, err := e.Decide(context.Background(), benchInput(100)); err != nil {
		t.Fatalf("a built-in decision held off the CPU for twice the bound: %v", err)
	}
}

// TestRangeLimit: a policy asking numbers.range for more than MaxRange
// numbers fails closed with an error naming the built-in, before the
// array is built (not parallel: it measures the process's allocations).
func TestRangeLimit(t *testing.T) {
	for _, call := range []string{"numbers.range(1, 2000000)", "numbers.range(2000000, 1)", "numbers.range_step(1, 20000000, 10)"} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "big.rego"), `package opensoul.rules

prefer contains id if {
	count(`+call+`) > 0
	id := "anthropic:a"
}
`)
		e := newEngine(t, Options{Dirs: []string{dir}, CacheSize: -1})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := e.Decide(context.Background(), baseInput())
		runtime.ReadMemStats(&after)
		var de *DecisionError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "more than the 100000 one call may make") {
			t.Fatalf("%s: err = %v, want a DecisionError about the range limit", call, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("%s: the evaluation allocated %d MiB", call, grew>>20)
		}
	}
	// Within the limit, ranges work as before.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok.rego"), `package opensoul.rules

prefer contains id if {
	count(numbers.range(1, 100000)) == 100000
	count(numbers.range_step(0, 100, 10)) == 11
	id := "anthropic:key"
}
`)
	e := newEngine(t, Options{Dirs: []string{dir}, CacheSize: -1})
	if d := decide(t, e, baseInput()); len(d.Candidates) == 0 || d.Candidates[0] != "anthropic:key" {
		t.Fatalf("candidates %v, want anthropic:key preferred", d.Candidates)
	}
}
