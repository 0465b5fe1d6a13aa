package policy

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// testTimeout bounds one Rego test.
const testTimeout = 10 * time.Second

// Test runs the Rego tests (rules named test_*) of the built-in policies and
// of every file under dirs, all compiled together as the gateway would with
// the same built-ins removed, and writes a report like `opa test` to w
// (every test when verbose, else failures and a summary). It returns the
// number of tests that failed or errored; err is set when the files could
// not be read or compiled (then [CompileErrors]).
func Test(ctx context.Context, dirs []string, w io.Writer, verbose bool) (failed int, err error) {
	c, mods, err := compileAll(dirs, true)
	if err != nil {
		return 0, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(c).
		SetModules(mods).
		CapturePrintOutput(true).
		EnableTracing(verbose).
		SetTimeout(testTimeout).
		RunTests(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("run policy tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		if !r.Skip && !r.Pass() {
			failed++
		}
		results = append(results, r)
	}
	// Results arrive in any order; report them in source order.
	slices.SortFunc(results, func(a, b *tester.Result) int {
		return cmp.Or(cmp.Compare(a.Location.File, b.Location.File), cmp.Compare(a.Location.Row, b.Location.Row))
	})
	sorted := make(chan *tester.Result, len(results))
	for _, r := range results {
		sorted <- r
	}
	close(sorted)
	if err := (tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: true}).Report(sorted); err != nil {
		return failed, fmt.Errorf("report policy tests: %w", err)
	}
	return failed, nil
}

// Check compiles the built-in policies and every file under dirs, tests
// included, and lists the files it compiled. A failure is [CompileErrors]
// with file:line:col for each problem.
func Check(ctx context.Context, dirs []string) (files []string, err error) {
	_, mods, err := compileAll(dirs, false)
	if err != nil {
		return nil, err
	}
	for name := range mods {
		files = append(files, name)
	}
	slices.Sort(files)
	return files, ctx.Err()
}

func compileAll(dirs []string, print bool) (*ast.Compiler, map[string]*ast.Module, error) {
	builtin, err := builtinSources()
	if err != nil {
		return nil, nil, fmt.Errorf("read built-in policies: %w", err)
	}
	user, err := dirSources(dirs)
	if err != nil {
		return nil, nil, err
	}
	return compile(append(builtin, user...), capabilities(), print)
}
