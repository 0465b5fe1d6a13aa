package policy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Options configure an Engine.
type Options struct {
	// Dirs are the user policy directories (config policy.dirs, default
	// <state>/policies). Every *.rego file under them is loaded; *_test.rego
	// files only by Test and Check. A directory that does not exist is empty.
	Dirs []string
	// Logger receives notes the caller cannot see in a return value (a
	// policy that reads the clock is not cached). Reload outcomes are
	// returned, never logged: the caller owns the loop and logs them once.
	// Nil discards.
	Logger *slog.Logger
	// CacheSize bounds the decision cache: 0 means 4096 entries, a negative
	// value turns caching off.
	CacheSize int
	// Timeout bounds the CPU time of one evaluation (config
	// policy.timeoutMs): a policy that loops or does too much work fails
	// that request instead of holding it and a CPU. Time spent waiting for
	// a busy CPU does not count (see work.go). 0 means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is the evaluation bound when Options.Timeout is 0: about
// a thousand times what the built-in policy needs.
const DefaultTimeout = 500 * time.Millisecond

// Engine evaluates the selection policy. It is safe for concurrent use.
type Engine struct {
	log     *slog.Logger
	cache   *decisionCache // nil when caching is off
	timeout atomic.Int64   // time.Duration bounding one evaluation

	set   atomic.Pointer[policySet] // the set in force
	evals atomic.Uint64             // policy evaluations (cache misses)
	calls atomic.Uint64             // Decide calls
	terms termMemo                  // the input terms of profiles, reused while their facts stay
	class classCache                // the profiles' classes (split evaluation; see split.go)
	whole bool                      // tests: always the whole evaluation, never the split one

	meter meter                    // measures an evaluation's work: threadCPU, or a test's
	check func(used time.Duration) // tests: told of each check of the CPU budget
	pause func()                   // tests: runs as the evaluation starts (a descheduled goroutine)
	wall  time.Duration            // tests: the backstop's multiple of the budget instead of wallFactor

	reloadMu  sync.Mutex // serializes Reload; guards the fields below
	dirs      []string
	failedSum [sha256.Size]byte
	failedErr error
}

// policySet is one compiled, prepared generation of the policies. It never
// changes after construction.
type policySet struct {
	gen      uint64
	sum      [sha256.Size]byte // fingerprint of the user files
	query    rego.PreparedEvalQuery
	files    []string
	volatile []string   // user files that read the clock: no caching
	ordinal  bool       // only built-in policies: lastUsed left out of the key (see appendKey)
	split    *splitPrep // only built-in policies: the split evaluation (split.go)
}

// New loads the built-in policies and the files under opts.Dirs, compiles
// them and prepares the decision query. It fails with [CompileErrors] when
// a policy does not compile.
func New(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{dirs: slices.Clone(opts.Dirs), log: opts.Logger, meter: threadCPU}
	e.SetTimeout(opts.Timeout)
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.CacheSize == 0:
		e.cache = newDecisionCache(defaultCacheSize)
	case opts.CacheSize > 0:
		e.cache = newDecisionCache(opts.CacheSize)
	}
	srcs, err := dirSources(e.dirs)
	if err != nil {
		return nil, err
	}
	set, err := build(ctx, srcs, 1)
	if err != nil {
		return nil, err
	}
	e.noteVolatile(set)
	e.set.Store(set)
	return e, nil
}

// build compiles the built-in policies plus srcs (test files left out) and
// prepares the decision query.
func build(ctx context.Context, srcs []source, gen uint64) (*policySet, error) {
	builtin, err := builtinSources()
	if err != nil {
		return nil, fmt.Errorf("read built-in policies: %w", err)
	}
	set := &policySet{gen: gen, sum: fingerprint(srcs), ordinal: true}
	var all []source
	for _, s := range append(builtin, srcs...) {
		if !s.isTest() {
			all = append(all, s)
			set.files = append(set.files, s.name)
			set.ordinal = set.ordinal && s.builtin
		}
	}
	caps := capabilities()
	compiler, mods, err := compile(all, caps, false)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if s.builtin {
			continue
		}
		if what, loc := volatileRef(mods[s.name]); what != "" {
			set.volatile = append(set.volatile, fmt.Sprintf("%s (reads %s)", locString(s.name, loc), what))
		}
	}
	if set.query, err = prepare(ctx, compiler, caps); err != nil {
		return nil, err
	}
	if set.ordinal {
		if set.split, err = prepareSplit(ctx, compiler, caps); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// prepare readies the decision query of compiled policies for evaluation.
// Results stay OPA terms (no JSON conversion): parseDecision reads them.
func prepare(ctx context.Context, compiler *ast.Compiler, caps *ast.Capabilities) (rego.PreparedEvalQuery, error) {
	q, err := rego.New(
		rego.Query(DecisionRule),
		rego.Compiler(compiler),
		rego.Capabilities(caps),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).PrepareForEval(ctx)
	if err != nil {
		return q, fmt.Errorf("prepare %s: %w", DecisionRule, err)
	}
	return q, nil
}

func locString(file string, loc *ast.Location) string {
	if loc == nil {
		return file
	}
	return fmt.Sprintf("%s:%d:%d", file, loc.Row, loc.Col)
}

func (e *Engine) noteVolatile(set *policySet) {
	if len(set.volatile) > 0 && e.cache != nil {
		e.log.Info("a policy reads the clock; decisions are not cached", "where", set.volatile)
	}
}

// Files lists the policy files in force: built-in ones as builtin/<name>,
// then user files by path.
func (e *Engine) Files() []string {
	return append([]string(nil), e.set.Load().files...)
}

// Decide evaluates data.opensoul.select.decision for in. An error (always a
// *DecisionError) means no decision for this input: the caller fails closed
// for this request. The returned Decision may be shared with other callers
// through the cache and must be treated as read-only.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	if in == nil {
		return Decision{}, decisionErr("no input")
	}
	e.calls.Add(1)
	set := e.set.Load()
	if e.cache == nil || len(set.volatile) > 0 {
		e.evals.Add(1)
		return e.eval(ctx, set, in)
	}
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	key := appendKey((*bp)[:0], in, set.ordinal)
	*bp = key
	if d, ok := e.cache.get(set.gen, key, in.Now); ok {
		return d, nil
	}
	e.evals.Add(1)
	d, err := e.eval(ctx, set, in)
	if err != nil {
		return Decision{}, err
	}
	lo, hi := validity(in)
	e.cache.put(set.gen, key, lo, hi, d)
	return d, nil
}

// Stats counts the engine's decisions since it was made.
type Stats struct {
	Decisions   uint64 // Decide calls
	Evaluations uint64 // of those, the ones the cache did not answer
}

// Stats returns how many decisions the engine made and how many of them
// it had to evaluate (the rest came from the decision cache).
func (e *Engine) Stats() Stats {
	return Stats{Decisions: e.calls.Load(), Evaluations: e.evals.Load()}
}

// eval evaluates set within the engine's CPU time bound (and, with user
// policies, the wall-clock backstop; see work.go).
func (e *Engine) eval(parent context.Context, set *policySet, in *Input) (Decision, error) {
	in.ProfileFacts() // an overlay list's full slice: every evaluation reads it
	budget := time.Duration(e.timeout.Load())
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	backstop := cmp.Or(e.wall, wallFactor) * budget
	if !set.ordinal {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, backstop, errWallBackstop)
		defer stop()
	}
	used, release := e.meter()
	stop := watch(budget, used, cancel, e.check)
	if e.pause != nil {
		e.pause()
	}
	var d Decision
	var err error
	if set.split != nil && !e.whole {
		d, err = set.decideSplit(ctx, in, &e.terms, &e.class)
	} else {
		d, err = set.eval(ctx, in, &e.terms)
	}
	stop()
	release()
	if err != nil && parent.Err() == nil {
		switch context.Cause(ctx) {
		case errWorkBudget:
			return Decision{}, decisionErr("evaluation used more than %v of CPU time (policy.timeoutMs): a policy loops or does too much work", budget)
		case errWallBackstop:
			return Decision{}, decisionErr("evaluation took longer than %v (%d × policy.timeoutMs of waiting for a CPU): a policy loops or does too much work", backstop, backstop/budget)
		}
	}
	return d, err
}

var errWallBackstop = errors.New("policy: evaluation passed the wall-clock backstop")

// SetTimeout changes the bound on one evaluation (a changed
// policy.timeoutMs); 0 means DefaultTimeout.
func (e *Engine) SetTimeout(d time.Duration) {
	e.timeout.Store(int64(cmp.Or(d, DefaultTimeout)))
}

func (s *policySet) eval(ctx context.Context, in *Input, memo *termMemo) (d Decision, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = Decision{}, decisionErr("evaluation panicked: %v", r)
		}
	}()
	rs, err := s.query.Eval(ctx, rego.EvalParsedInput(in.value(memo)))
	if err != nil {
		return Decision{}, &DecisionError{Rule: DecisionRule, Err: err}
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, &DecisionError{Rule: DecisionRule, Err: ErrUndefined}
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Decision{}, decisionErr("unexpected result type %T", rs[0].Expressions[0].Value)
	}
	return parseDecision(t.Value, in)
}

// SetDirs replaces the user policy directories (a changed policy.dirs).
// The set in force stays until the next Reload reads the new directories
// and compiles them; a set that fails to compile is refused as usual.
func (e *Engine) SetDirs(dirs []string) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.dirs = slices.Clone(dirs)
}

// Reload re-reads the policy directories and, if any file changed, compiles
// the new set and puts it in force; cached decisions of the old set are
// never served again. A set that fails to compile is refused: the previous
// one stays in force and the error is returned (not logged: the caller
// logs it, once per distinct error). Reload is cheap when nothing changed (it reads
// and hashes the files), so a gateway may call it every few seconds.
func (e *Engine) Reload(ctx context.Context) (changed bool, err error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	srcs, err := dirSources(e.dirs)
	if err != nil {
		return false, err
	}
	cur := e.set.Load()
	sum := fingerprint(srcs)
	if sum == cur.sum {
		e.failedErr = nil
		return false, nil
	}
	if e.failedErr != nil && sum == e.failedSum {
		return false, e.failedErr
	}
	set, err := build(ctx, srcs, cur.gen+1)
	if err != nil {
		e.failedSum, e.failedErr = sum, err
		return false, err
	}
	e.failedErr = nil
	e.set.Store(set)
	if e.cache != nil {
		e.cache.reset()
	}
	e.noteVolatile(set)
	return true, nil
}
