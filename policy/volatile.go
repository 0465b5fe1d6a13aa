package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// volatileRef reports the first place in m where a policy reads something
// that is not an input fact the decision cache keys on: the clock
// (input.now), the whole input document or a computed key of it (which may
// be "now"), or a non-deterministic built-in such as time.now_ns. Such a
// policy can change its answer while every cached fact stays the same
// (working hours, say), so its decisions must not be cached. The check is
// deliberately conservative. The built-in policy is exempt: it compares
// input.now only with the time boundaries the cache itself tracks.
func volatileRef(m *ast.Module) (what string, loc *ast.Location) {
	for _, imp := range m.Imports {
		if r, ok := imp.Path.Value.(ast.Ref); ok && readsClock(r) {
			return "import " + r.String(), imp.Location
		}
	}
	ast.WalkRefs(m, func(r ast.Ref) bool {
		if what != "" {
			return true
		}
		if readsClock(r) {
			what, loc = r.String(), r[0].Location
			return true
		}
		if b, ok := ast.BuiltinMap[r.String()]; ok && b.Nondeterministic {
			what, loc = r.String(), r[0].Location
			return true
		}
		return false
	})
	return what, loc
}

// readsClock reports whether r is input, input.now, or input[x] with x not
// a constant string.
func readsClock(r ast.Ref) bool {
	if len(r) == 0 || !r[0].Equal(ast.InputRootDocument) {
		return false
	}
	if len(r) == 1 {
		return true
	}
	s, ok := r[1].Value.(ast.String)
	return !ok || s == "now"
}
