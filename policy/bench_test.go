package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// cpuTime is the CPU time this process has used. The benchmarks report it
// per op beside wall time because shared machines inflate wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// benchInput has n profiles of mixed types, some cooling, no explicit order.
func benchInput(n int) *Input {
	in := baseInput()
	in.Profiles = make([]ProfileFacts, n)
	types := []string{"oauth", "token", "api_key"}
	for i := range in.Profiles {
		in.Profiles[i] = ProfileFacts{
			ID: fmt.Sprintf("anthropic:p%03d", i), Provider: "anthropic", Type: types[i%3], Status: "ok",
			LastUsed: t0 - int64(i)*minute,
		}
		if i%7 == 0 {
			in.Profiles[i].CooldownUntil = t0 + int64(i)*minute
		}
	}
	in.Session.Pin = &Pin{Profile: "anthropic:p001", Source: "auto"}
	return in
}

func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		e := newEngine(b, Options{})
		in := benchInput(10)
		decide(b, e, in)
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.Decide(ctx, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// With the decision cache off (CacheSize -1), every Decide evaluates:
	//   whole-N    the whole Rego evaluation (what a user policy gets)
	//   uncached-N the split evaluation with the same input every time:
	//              every class from the class cache, the decision assembled
	//   churn-N    split, and on every decision one profile's cooldown
	//              is set or lifted, to a time never seen before (a
	//              different profile each time), and the request names a
	//              new model and a new session: one class evaluated
	//   cold-N     split with an empty class cache: every class evaluated
	//              (profiles of equal facts share one: 3 for the
	//              profiles not cooling, one per cooling profile)
	//   distinct-N cold, with every profile's facts its own (an
	//              errorCount each): N classes evaluated
	for _, n := range []int{10, 100, 1000} {
		for _, mode := range []string{"whole", "uncached", "churn", "cold", "distinct"} {
			b.Run(fmt.Sprintf("%s-%d", mode, n), func(b *testing.B) {
				e := newEngine(b, Options{CacheSize: -1})
				e.whole = mode == "whole"
				in := benchInput(n)
				if mode == "distinct" {
					for i := range in.Profiles {
						in.Profiles[i].ErrorCount = i
					}
				}
				decide(b, e, in)
				step := 0
				b.ReportAllocs()
				defer reportCPU(b, cpuTime())
				for b.Loop() {
					switch mode {
					case "churn":
						step++
						p := &in.Profiles[step%n]
						if p.CooldownUntil > in.Now {
							p.CooldownUntil = in.Now - int64(step) // over: lifted
						} else {
							p.CooldownUntil = in.Now + minute + int64(step)
						}
						in.Request.Model = fmt.Sprintf("claude-%d", step)
						in.Session.ID = fmt.Sprintf("s%d", step)
					case "cold", "distinct":
						e.class.mu.Lock()
						e.class.m = nil
						e.class.mu.Unlock()
					}
					if _, err := e.Decide(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecideBounds puts BenchmarkDecide's uncached numbers in context:
// the same evaluation path (input conversion, OPA's evaluator, decision
// checks) run on two stand-ins for the built-in policy in testdata/bounds.
// "floor" decides nothing; "round_robin_only" reaches the built-in policy's
// candidates and cooling for the benchmark's input with only the rules that
// input exercises (round robin, cooldowns, the auto pin), none of the
// others a full implementation must also evaluate.
func BenchmarkDecideBounds(b *testing.B) {
	ctx := context.Background()
	builtin := newEngine(b, Options{CacheSize: -1})
	for _, name := range []string{"floor", "round_robin_only"} {
		text, err := os.ReadFile(filepath.Join("testdata", "bounds", name+".rego"))
		if err != nil {
			b.Fatal(err)
		}
		caps := capabilities()
		c, _, err := compile([]source{{name: name + ".rego", text: text}}, caps, false)
		if err != nil {
			b.Fatal(err)
		}
		q, err := prepare(ctx, c, caps)
		if err != nil {
			b.Fatal(err)
		}
		set := &policySet{query: q}
		memo := new(termMemo)
		for _, n := range []int{10, 100} {
			b.Run(fmt.Sprintf("%s-%d", name, n), func(b *testing.B) {
				in := benchInput(n)
				got, err := set.eval(ctx, in, memo)
				if err != nil {
					b.Fatal(err)
				}
				if want := decide(b, builtin, in); name != "floor" &&
					(!slices.Equal(got.Candidates, want.Candidates) || !slices.Equal(got.Cooling, want.Cooling)) {
					b.Fatalf("%s decides %v cooling %v; the built-in policy %v cooling %v", name, got.Candidates, got.Cooling, want.Candidates, want.Cooling)
				}
				b.ReportAllocs()
				defer reportCPU(b, cpuTime())
				for b.Loop() {
					if _, err := set.eval(ctx, in, memo); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecideUsage is BenchmarkDecide's whole-N (a user policy's
// path: the whole Rego evaluation, cache off) without and with usage
// facts on every profile and on the agent: what input.profiles[i].usage
// and input.agent.usage add to an uncached decision.
func BenchmarkDecideUsage(b *testing.B) {
	ctx := context.Background()
	t := UsageTotals{Requests: 120, Tokens: 1_400_000, Input: 35_000, Output: 61_000, CacheRead: 1_300_000, CacheWrite: 9_900, Cost: 4.7}
	u := &UsageFacts{H1: t, H5: t, H24: t, D30: t}
	for _, n := range []int{10, 100} {
		for _, with := range []bool{false, true} {
			b.Run(fmt.Sprintf("whole-%d/usage=%v", n, with), func(b *testing.B) {
				e := newEngine(b, Options{CacheSize: -1})
				e.whole = true
				in := benchInput(n)
				if with {
					in.Agent.Usage = u
					for i := range in.Profiles {
						in.Profiles[i].Usage = u
					}
				}
				decide(b, e, in)
				b.ReportAllocs()
				defer reportCPU(b, cpuTime())
				for b.Loop() {
					if _, err := e.Decide(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// stepCounter counts OPA's evaluation steps (trace events: enter, eval,
// unify, redo, exit, fail, index): a measure of an evaluation's work that
// does not move with the machine's load.
type stepCounter struct{ n int }

func (c *stepCounter) Enabled() bool               { return true }
func (c *stepCounter) TraceEvent(topdown.Event)    { c.n++ }
func (c *stepCounter) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

// BenchmarkDecideSteps reports the evaluation steps (steps/op) of the
// split evaluation's classes query and of the whole decision over the
// same profiles: "cooling-1" and "candidate-1" are what one changed
// profile costs (BenchmarkDecide's churn), N the cost of N new classes
// (cold). The time it reports includes the tracing; read the steps.
func BenchmarkDecideSteps(b *testing.B) {
	ctx := context.Background()
	set := newEngine(b, Options{CacheSize: -1}).set.Load()
	in := benchInput(1000)
	cool := in.Profiles[0]
	cool.CooldownUntil = in.Now + 5*minute
	for _, c := range []struct {
		name string
		ps   []ProfileFacts
	}{
		{"cooling-1", []ProfileFacts{cool}},
		{"candidate-1", in.Profiles[1:2]},
		{"10", in.Profiles[:10]},
		{"100", in.Profiles[:100]},
		{"1000", in.Profiles},
	} {
		val := classInput(in, new(termMemo).profiles(c.ps))
		whole := in.valueWith(new(termMemo).profiles(c.ps))
		for _, q := range []struct {
			name  string
			query rego.PreparedEvalQuery
			input ast.Value
		}{{"classes", set.split.query, val}, {"decision", set.query, whole}} {
			b.Run(q.name+"-"+c.name, func(b *testing.B) {
				var sc stepCounter
				for b.Loop() {
					sc.n = 0
					if _, err := q.query.Eval(ctx, rego.EvalParsedInput(q.input), rego.EvalQueryTracer(&sc)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(sc.n), "steps/op")
			})
		}
	}
}
