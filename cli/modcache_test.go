package cli

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opensoul/opensoul/wasm"
)

// Compiling the built-in provider modules takes tens of seconds under
// -race, and every command that checks a secret starts a module host on
// the user's cache dir. Each test has its own HOME, so without help each
// one compiled the modules again (most of `go test -race ./cli`'s time).
// newEnv seeds the test's cache dir with the compiled modules instead:
// they are compiled once per machine into warmModules (shared with
// package wasm's tests; wazero keys entries by module hash and its own
// version and writes them atomically) and linked there. The verdict file
// (checks.json) is not copied, so no test sees another's verdicts.
var warmModules = filepath.Join(os.TempDir(), "opensoul-test-cache", "opensoul", "wazero")

var (
	warmOnce sync.Once
	warmErr  error
)

// seedModuleCache copies the compiled built-in modules into home's
// module cache dir (what cacheDir finds for HOME=home).
func seedModuleCache(t *testing.T, home string) {
	t.Helper()
	warmOnce.Do(func() { warmErr = compileBuiltins(warmModules) })
	if warmErr != nil {
		t.Fatalf("compiling the built-in modules: %v", warmErr)
	}
	to := filepath.Join(home, ".cache", "opensoul", "wazero")
	err := filepath.WalkDir(warmModules, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == warmModules || d.Name() == "checks.json" || filepath.Ext(path) == ".tmp" {
			return err
		}
		rel, _ := filepath.Rel(warmModules, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		// A hard link costs nothing and is safe: wazero never writes a
		// cache file in place (it renames a new one over it, or removes it).
		if os.Link(path, filepath.Join(to, rel)) == nil {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// compileBuiltins loads every built-in module once on a host whose
// cache is dir, which leaves them compiled there.
func compileBuiltins(dir string) error {
	ctx := context.Background()
	h, err := wasm.NewHost(ctx, wasm.Options{CacheDir: dir})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	r, errs := wasm.NewRegistry(ctx, h, nil)
	if errs = append(errs, r.Load(ctx)...); len(errs) > 0 {
		return errs[0]
	}
	return nil
}
