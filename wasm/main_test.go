package wasm

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testCacheDir is one compilation cache for every test run, so the
// built-ins are compiled once per machine (wazero keys entries by module
// hash and its own version, and writes them atomically), however many
// hosts the tests start.
// It is where the CLI's tests (cli/providers_cmd_test.go) look too, with
// XDG_CACHE_HOME=$TMPDIR/opensoul-test-cache.
var testCacheDir = filepath.Join(os.TempDir(), "opensoul-test-cache", "opensoul", "wazero")

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestHost starts a host on the shared cache; its log goes to the
// returned buffer. The built-ins are compiled (once) before it starts, so
// parallel tests never compile the same module at the same time.
func newTestHost(t testing.TB, o Options) (*Host, *syncBuffer) {
	t.Helper()
	builtins(t)
	logs := &syncBuffer{}
	o.CacheDir = testCacheDir
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	h, err := NewHost(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, logs
}

var (
	sharedOnce sync.Once
	sharedReg  *Registry
)

// builtins returns a registry of the built-in modules, loaded once for the
// whole test binary.
func builtins(t testing.TB) *Registry {
	t.Helper()
	sharedOnce.Do(func() {
		h, err := NewHost(context.Background(), Options{CacheDir: testCacheDir})
		if err != nil {
			t.Fatal(err)
		}
		r, errs := NewRegistry(context.Background(), h, nil)
		errs = append(errs, r.Load(context.Background())...)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		sharedReg = r
	})
	if sharedReg == nil {
		t.Fatal("built-in registry failed to load")
	}
	return sharedReg
}
