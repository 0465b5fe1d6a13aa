package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLeavesStayLeaves guards the shape of the house (STYLE.md): the
// leaves under the request path import none of the packages above them.
// Each leaf lists the OpenSoul packages it may depend on, itself
// included; any other OpenSoul package in its dependencies (direct or
// not) fails the test. thirdParty says whether it may use modules outside
// the standard library at all.
func TestLeavesStayLeaves(t *testing.T) {
	t.Parallel()
	const mod = "github.com/opensoul/opensoul"
	for _, leaf := range []struct {
		pkg        string
		may        []string
		thirdParty bool
	}{
		{"policy", []string{"policy", "policies"}, true},          // OPA, and the embedded built-in policy
		{"wasm", []string{"wasm"}, true},                          // wazero
		{"gateway/provider", []string{"gateway/provider"}, false}, // the provider table: standard library only
		{"gateway/store", []string{"gateway/store"}, true},
	} {
		t.Run(leaf.pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./"+leaf.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps ./%s: %v", leaf.pkg, err)
			}
			deps := strings.Fields(string(out))
			if !slices.Contains(deps, mod+"/"+leaf.pkg) {
				t.Fatalf("go list -deps ./%s does not list the package itself: %v", leaf.pkg, deps)
			}
			for _, dep := range deps {
				rel, ours := strings.CutPrefix(dep, mod+"/")
				switch {
				case ours && !slices.Contains(leaf.may, rel):
					t.Errorf("%s depends on %s; it must stay a leaf (may use only %v)", leaf.pkg, rel, leaf.may)
				case !ours && dep != mod && !leaf.thirdParty:
					t.Errorf("%s depends on %s; it must use only the standard library", leaf.pkg, dep)
				}
			}
		})
	}
}
