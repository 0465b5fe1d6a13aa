package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
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
		{"gateway/keep", []string{"gateway/keep", "gateway/oauth", "gateway/store"}, true}, // logins kept fresh: no gateway, no wasm
		{"gateway/scrub", []string{"gateway/scrub"}, false},                                // secrets out of answers: standard library only
		{"cli/dotenv", []string{"cli/dotenv", "gateway/store"}, false},                     // .env files: the store's lock and atomic write only
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

// TestNoProviderSwitches keeps per-provider knowledge in the provider
// table (gateway/provider, STYLE.md "Anti-patterns"): outside it, and
// outside the provider modules themselves, no Go code compares a provider
// name with a non-empty string literal or switches on one. Read the
// table (providers.For(name).Field) instead.
func TestNoProviderSwitches(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (path == filepath.Join("gateway", "provider") || path == filepath.Join("wasm", "modules") || path == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".":
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if (n.Op == token.EQL || n.Op == token.NEQ) && (providerLiteral(n.X, n.Y) || providerLiteral(n.Y, n.X)) {
					t.Errorf("%s: compares a provider with a name; use the provider table (gateway/provider)", fset.Position(n.Pos()))
				}
			case *ast.SwitchStmt:
				if n.Tag != nil && namesProvider(n.Tag) {
					for _, c := range n.Body.List {
						for _, e := range c.(*ast.CaseClause).List {
							if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING && lit.Value != `""` {
								t.Errorf("%s: switches on a provider name; use the provider table (gateway/provider)", fset.Position(e.Pos()))
							}
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// namesProvider: e is a variable or field called provider or Provider
// (possibly dereferenced: *provider from a flag).
func namesProvider(e ast.Expr) bool {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	switch e := e.(type) {
	case *ast.Ident:
		return strings.EqualFold(e.Name, "provider")
	case *ast.SelectorExpr:
		return strings.EqualFold(e.Sel.Name, "provider")
	}
	return false
}

// providerLiteral: x names a provider and y is a non-empty string literal.
func providerLiteral(x, y ast.Expr) bool {
	lit, ok := y.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING && lit.Value != `""` && namesProvider(x)
}
