package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil { // as editors and cp-then-mv do
		t.Fatal(err)
	}
}

// A changed module file replaces the running module without a restart;
// answers cached for the old module are not served; a broken new file is
// refused, naming the file, and the module in force kept.
func TestUpdateReloadsChangedModule(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acme.wasm")
	copyFile(t, acmeWasm, path)
	mods := map[string]string{"acme": path}
	r, errs := NewRegistry(ctx, h, mods)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	headers := func() HeadersResult {
		t.Helper()
		got, err := r.Headers(ctx, "acme", HeadersRequest{Type: "api_key", Secret: "acme-7"})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := headers(); got.Set["x-acme-key"] != "acme-7" {
		t.Fatalf("before: %+v", got)
	}
	old := r.entry("acme").mod

	if changed, errs := r.Update(ctx, mods); len(changed)+len(errs) > 0 {
		t.Errorf("nothing changed, Update says %v %v", changed, errs)
	}

	copyFile(t, bad("picky.wasm"), path) // answers no headers: the generic Bearer
	changed, errs := r.Update(ctx, mods)
	if !slices.Equal(changed, []string{"acme"}) || len(errs) > 0 {
		t.Fatalf("Update = %v %v, want [acme]", changed, errs)
	}
	if got := headers(); got.Set["authorization"] != "Bearer acme-7" || got.Set["x-acme-key"] != "" {
		t.Errorf("after the change: %+v, want the new module's (generic) headers", got)
	}
	if !old.retired.Load() || len(old.slots) != 0 {
		t.Errorf("the old module was not retired (%d live instances)", len(old.slots))
	}

	for _, broken := range []string{"../testdata/wasm/bad/not-wasm.wasm", bad("trap.wasm")} {
		copyFile(t, broken, path)
		for range 2 { // refused again, without another compile
			changed, errs = r.Update(ctx, mods)
			if len(changed) > 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), path) {
				t.Fatalf("broken %s: Update = %v %v, want one error naming %s", broken, changed, errs, path)
			}
		}
		if got := headers(); got.Set["authorization"] != "Bearer acme-7" {
			t.Errorf("with %s refused: %+v, want the module in force", broken, got)
		}
	}
	for _, p := range r.Providers(ctx) {
		if p.Name == "acme" && (p.Error != "" || p.Version != "0.0.1") {
			t.Errorf("listed as %+v, want the module in force", p)
		}
	}

	copyFile(t, acmeWasm, path)
	if changed, errs = r.Update(ctx, mods); len(changed) != 1 || len(errs) > 0 {
		t.Fatalf("fixed: Update = %v %v", changed, errs)
	}
	if got := headers(); got.Set["x-acme-key"] != "acme-7" {
		t.Errorf("after the fix: %+v", got)
	}

	// Dropping the module from config drops the provider; naming it again
	// brings it back.
	if changed, _ = r.Update(ctx, nil); !slices.Equal(changed, []string{"acme"}) || r.entry("acme") != nil {
		t.Errorf("removed: %v", changed)
	}
	if _, err := r.Headers(ctx, "openai", HeadersRequest{Secret: "x"}); err != nil {
		t.Errorf("built-ins after Update: %v", err)
	}
}

// A module file that was missing at start loads once it appears.
func TestUpdateLoadsModuleThatAppears(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acme.wasm")
	mods := map[string]string{"acme": path}
	r, errs := NewRegistry(ctx, h, mods)
	if len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
		t.Fatalf("errs = %v", errs)
	}
	copyFile(t, acmeWasm, path)
	if changed, errs := r.Update(ctx, mods); len(changed) != 1 || len(errs) > 0 {
		t.Fatalf("Update = %v %v", changed, errs)
	}
	if got, err := r.Headers(ctx, "acme", HeadersRequest{Secret: "acme-1"}); err != nil || got.Set["x-acme-key"] != "acme-1" {
		t.Errorf("%+v %v", got, err)
	}
}

// Calls in flight while a module is replaced all get an answer, from the
// old module or the new one, never an error.
func TestUpdateUnderLoad(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{MaxInstances: 2})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acme.wasm")
	copyFile(t, acmeWasm, path)
	mods := map[string]string{"acme": path}
	r, _ := NewRegistry(ctx, h, mods)
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				secret := fmt.Sprintf("acme-%d-%d", g, i) // a new credential: no cache hit
				got, err := r.Headers(ctx, "acme", HeadersRequest{Secret: secret})
				if err != nil || (got.Set["x-acme-key"] != secret && got.Set["authorization"] != "Bearer "+secret) {
					errs <- fmt.Errorf("%+v %v", got, err)
					return
				}
			}
		})
	}
	for i := range 6 {
		copyFile(t, []string{bad("picky.wasm"), acmeWasm}[i%2], path)
		if changed, errs := r.Update(ctx, mods); len(changed) != 1 || len(errs) > 0 {
			t.Errorf("Update %d: %v %v", i, changed, errs)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Replacing a module that its breaker skips takes it out of the backoff
// file, and the new module is asked at once.
func TestUpdateClearsBackoffOfReplacedModule(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "module-backoff.json")
	h, logs := newTestHost(t, Options{CallTimeout: time.Second, BackoffFile: file})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acme.wasm")
	copyFile(t, bad("loop-headers.wasm"), path)
	mods := map[string]string{"acme": path}
	r, _ := NewRegistry(ctx, h, mods)
	for range DefaultBreakerFailures {
		r.Headers(ctx, "acme", HeadersRequest{Secret: "acme-1"})
	}
	if skipped, _ := ReadBackoffs(file); len(skipped) != 1 {
		t.Fatalf("the breaker did not open: %+v", skipped)
	}
	copyFile(t, acmeWasm, path)
	if changed, errs := r.Update(ctx, mods); len(changed) != 1 || len(errs) > 0 {
		t.Fatalf("Update = %v %v", changed, errs)
	}
	if skipped, err := ReadBackoffs(file); len(skipped) != 0 || err != nil {
		t.Errorf("after the fix the backoff file lists %+v %v", skipped, err)
	}
	if got, err := r.Headers(ctx, "acme", HeadersRequest{Secret: "acme-1"}); err != nil || got.Set["x-acme-key"] != "acme-1" {
		t.Errorf("the new module: %+v %v", got, err)
	}
	// The loop again, in a new file: logged again.
	copyFile(t, bad("loop-headers.wasm"), path)
	r.Update(ctx, mods)
	r.Headers(ctx, "acme", HeadersRequest{Secret: "acme-2"})
	if n := strings.Count(logs.String(), "call deadline exceeded"); n < 3 { // failure + opening, then the new file's failure
		t.Errorf("the new file's failure was not logged (%d lines):\n%s", n, logs)
	}
}
