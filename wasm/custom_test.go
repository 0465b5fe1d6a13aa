package wasm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const acmeWasm = "../testdata/wasm/acme.wasm"

func bad(name string) string { return "../testdata/wasm/bad/" + name }

// The WAT module proves the ABI needs no Go: end to end through the registry.
func TestCustomWATModule(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	ctx := context.Background()
	r, errs := NewRegistry(ctx, h, map[string]string{"acme": acmeWasm})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Run("check valid", func(t *testing.T) {
		got, err := r.Check(ctx, "acme", CheckRequest{Type: "api_key", Secret: "acme-123"})
		if err != nil || !got.Valid || got.Kind != KindAPIKey {
			t.Errorf("%+v %v", got, err)
		}
	})
	t.Run("check invalid", func(t *testing.T) {
		got, err := r.Check(ctx, "acme", CheckRequest{Type: "api_key", Secret: "sk-other"})
		if err != nil || got.Valid || got.Reason != "acme keys start with acme-" || got.Hint == "" {
			t.Errorf("%+v %v", got, err)
		}
	})
	t.Run("headers", func(t *testing.T) {
		got, err := r.Headers(ctx, "acme", HeadersRequest{Type: "api_key", Secret: "acme-123"})
		if err != nil || got.Set["x-acme-key"] != "acme-123" || len(got.Set) != 1 || strings.Join(got.Remove, ",") != "authorization" {
			t.Errorf("%+v %v", got, err)
		}
	})
	t.Run("classify falls back to the generic table", func(t *testing.T) {
		got, err := r.Classify(ctx, "acme", ClassifyRequest{Status: 429, Headers: map[string]string{"retry-after": "9"}})
		if err != nil || got.Reason != ReasonRateLimit || !got.Failover || deref(got.RetryAfterMs) != int64(9000) {
			t.Errorf("%+v %v", got, err)
		}
	})
	t.Run("listed with its ops", func(t *testing.T) {
		var acme ProviderInfo
		for _, p := range r.Providers(ctx) {
			if p.Name == "acme" {
				acme = p
			}
		}
		if acme.Source != acmeWasm || acme.ABIVersion != 1 || acme.Version != "0.1.0" || strings.Join(acme.Ops, ",") != "info,check,headers" || !acme.OpsDeclared {
			t.Errorf("%+v", acme)
		}
	})
}

// A config module replaces a built-in of the same name.
func TestCustomModuleOverridesBuiltin(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"openai": acmeWasm})
	got, err := r.Headers(ctx, "openai", HeadersRequest{Type: "api_key", Secret: "acme-9"})
	if err != nil || got.Set["x-acme-key"] != "acme-9" {
		t.Errorf("%+v %v", got, err)
	}
}

// Every bad module fails with an error that names its file, and the other
// providers in the same registry keep working.
func TestBadModules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want error
	}{
		{"not-wasm.wasm", ErrNotWasm},
		{"missing-exports.wasm", ErrMissingExport},
		{"wrong-abi.wasm", ErrABIVersion},
		{"trap.wasm", ErrTrap},
		{"loop.wasm", ErrDeadline},
		{"mem-bomb.wasm", ErrMemoryLimit},
		{"huge.wasm", ErrResponseTooLarge},
		{"garbage.wasm", ErrBadResponse},
		{"does-not-exist.wasm", os.ErrNotExist},
	}
	// A short deadline, so the loop ends quickly; generous enough for the
	// tiny WAT modules, which are the only ones this host calls.
	h, logs := newTestHost(t, Options{CallTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	modules := map[string]string{"acme": acmeWasm}
	for _, tt := range tests {
		modules[strings.TrimSuffix(tt.file, ".wasm")] = bad(tt.file)
	}
	r, _ := NewRegistry(ctx, h, modules)
	others := builtins(t) // a second registry on another host must not care
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			provider := strings.TrimSuffix(tt.file, ".wasm")
			_, err := r.Check(ctx, provider, CheckRequest{Type: "api_key", Secret: "acme-1"})
			var me *ModuleError
			if !errors.As(err, &me) || me.File != bad(tt.file) || me.Provider != provider {
				t.Fatalf("err = %v, want a *ModuleError for %s", err, bad(tt.file))
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), bad(tt.file)) {
				t.Errorf("error does not name the file: %v", err)
			}
			// The same error again, without another load attempt.
			if _, err2 := r.Headers(ctx, provider, HeadersRequest{Secret: "x"}); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second call: %v", err2)
			}
			// Everyone else keeps working.
			if got, err := r.Check(ctx, "acme", CheckRequest{Type: "api_key", Secret: "acme-1"}); err != nil || !got.Valid {
				t.Errorf("acme after %s: %+v %v", tt.file, got, err)
			}
			if got, err := r.Classify(ctx, "openrouter", ClassifyRequest{Status: 402}); err != nil && !errors.Is(err, ErrDeadline) {
				t.Errorf("openrouter after %s: %+v %v", tt.file, got, err)
			}
			if got, err := others.Check(ctx, "openrouter", CheckRequest{Type: "api_key", Secret: openrouterKey}); err != nil || !got.Valid {
				t.Errorf("openrouter after %s: %+v %v", tt.file, got, err)
			}
		})
	}
	// Providers lists the failures instead of hiding them.
	for _, p := range r.Providers(ctx) {
		if _, isBad := modules[p.Name]; isBad && p.Name != "acme" && p.Error == "" {
			t.Errorf("%s listed without its error", p.Name)
		}
	}
	// Each failure is logged once, naming the module.
	for _, tt := range tests {
		if n := strings.Count(logs.String(), "module="+bad(tt.file)); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", tt.file, n, logs)
		}
	}
}

// A module that misbehaves on one call loses that instance, which is
// replaced: the next call works.
func TestMisbehavingInstanceIsReplaced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		word string
		want error
	}{
		{"please-loop", ErrDeadline}, // runs on a host with a short deadline
		{"please-trap", ErrTrap},
		{"please-bomb", ErrTrap}, // memory.grow fails at the cap, then it traps
		{"please-huge", ErrResponseTooLarge},
		{"please-overrun", ErrBadResponse},
		{"please-garbage", ErrBadResponse},
	}
	// The breaker would skip the module after a few failures in a row
	// (TestBreaker); here every failure must reach the module.
	h, logs := newTestHost(t, Options{CallTimeout: 10 * time.Second, MaxInstances: 2, MemoryLimitPages: 64, BreakerFailures: 100})
	short, shortLogs := newTestHost(t, Options{CallTimeout: 100 * time.Millisecond, MaxInstances: 2, BreakerFailures: 100})
	ctx := context.Background()
	mods := map[string]string{"flaky": bad("flaky.wasm")}
	slow, _ := NewRegistry(ctx, h, mods)
	fast, _ := NewRegistry(ctx, short, mods)
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			r := slow
			if tt.want == ErrDeadline {
				r = fast
			}
			for range 2 {
				_, err := r.Check(ctx, "flaky", CheckRequest{Type: "api_key", Secret: tt.word})
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), bad("flaky.wasm")) {
					t.Fatalf("err = %v, want %v naming the file", err, tt.want)
				}
			}
			got, err := r.Check(ctx, "flaky", CheckRequest{Type: "api_key", Secret: "fine"})
			if err != nil || !got.Valid {
				t.Fatalf("after %s: %+v %v", tt.word, got, err)
			}
		})
	}
	// Two failures of each kind, but one log record per kind.
	all := logs.String() + shortLogs.String()
	for _, want := range []string{"deadline exceeded", "trapped", "larger than the cap", "malformed"} {
		if n := strings.Count(all, want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, logs)
		}
	}
}

// The caller's own cancellation is not the module's failure.
func TestCallerCancelIsNotReported(t *testing.T) {
	t.Parallel()
	h, logs := newTestHost(t, Options{CallTimeout: 10 * time.Second})
	r, _ := NewRegistry(context.Background(), h, map[string]string{"flaky": bad("flaky.wasm")})
	if errs := r.Load(context.Background()); len(errs) > 0 {
		t.Fatal(errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := r.Check(ctx, "flaky", CheckRequest{Secret: "please-loop"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if strings.Contains(logs.String(), "flaky") {
		t.Errorf("a cancelled call was reported:\n%s", logs)
	}
}

// Secrets never reach logs or errors, even from a module that echoes them.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	t.Parallel()
	h, logs := newTestHost(t, Options{CallTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"flaky": bad("flaky.wasm"), "broken": bad("trap.wasm")})
	secret := "please-echo-" + fill("sk-ant-api03-SECRETFIXTURE", 60)
	var out []string
	for _, p := range []string{"flaky", "broken", "anthropic"} {
		for _, op := range []func() error{
			func() error { _, err := r.Check(ctx, p, CheckRequest{Type: "api_key", Secret: secret}); return err },
			func() error { _, err := r.Headers(ctx, p, HeadersRequest{Type: "api_key", Secret: secret}); return err },
			func() error {
				c, err := r.Check(ctx, p, CheckRequest{Secret: secret + "-2"})
				out = append(out, c.Reason, c.Hint)
				return err
			},
		} {
			if err := op(); err != nil {
				out = append(out, err.Error())
			}
		}
	}
	out = append(out, logs.String())
	all := strings.Join(out, "\n")
	if !strings.Contains(all, "[redacted]") {
		t.Errorf("the echoing module's error was not seen:\n%s", all)
	}
	for _, s := range []string{secret, secret[len(secret)/2:], "SECRETFIXTURE"} {
		if strings.Contains(all, s) {
			t.Fatalf("a secret leaked:\n%s", all)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{MaxInstances: 3})
	ctx := context.Background()
	r, _ := NewRegistry(ctx, h, map[string]string{"acme": acmeWasm})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36) // verdicts persist across runs
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				// Distinct secrets, so every call reaches a module.
				key := fill("sk-ant-api03-"+nonce, 100) + string(rune('a'+g)) + strings.Repeat("x", i%7) + string(rune('A'+i%26))
				h, err := r.Headers(ctx, "anthropic", HeadersRequest{Type: "api_key", Secret: key})
				if err != nil || h.Set["x-api-key"] != key {
					errs <- errors.Join(err, errors.New("anthropic headers mixed up"))
					return
				}
				hd, err := r.Headers(ctx, "acme", HeadersRequest{Type: "api_key", Secret: "acme-" + key[20:30]})
				if err != nil || hd.Set["x-acme-key"] != "acme-"+key[20:30] {
					errs <- errors.Join(err, errors.New("acme headers mixed up"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if live := len(r.entry("anthropic").mod.slots); live > 3 {
		t.Errorf("%d live instances, cap is 3", live)
	}
}

// A warm start finds compiled code in the cache dir instead of compiling.
func TestCompilationCacheOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	load := func() {
		h, err := NewHost(ctx, Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(ctx)
		r, _ := NewRegistry(ctx, h, map[string]string{"acme": acmeWasm})
		if errs := r.Load(ctx, "acme"); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	load()
	first := cacheFiles(t, dir)
	if len(first) == 0 {
		t.Fatal("nothing cached")
	}
	load()
	second := cacheFiles(t, dir)
	if len(second) != len(first) {
		t.Errorf("cache grew from %d to %d files on a warm start", len(first), len(second))
	}
	for name, mod := range first {
		if !second[name].Equal(mod) {
			t.Errorf("%s was rewritten on a warm start", name)
		}
	}
}

func cacheFiles(t *testing.T, dir string) map[string]time.Time {
	files := map[string]time.Time{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			files[path] = info.ModTime()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestHostCloseTwice(t *testing.T) {
	t.Parallel()
	h, err := NewHost(context.Background(), Options{NoDiskCache: true})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewRegistry(context.Background(), h, map[string]string{"acme": acmeWasm})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Check(context.Background(), "acme", CheckRequest{Secret: "acme-1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// The committed .wasm fixtures are the committed .wat, compiled.
func TestWATFixturesUpToDate(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not installed")
	}
	out := t.TempDir()
	if b, err := exec.Command("sh", "../testdata/wasm/build.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	wats, _ := filepath.Glob("../testdata/wasm/*.wat")
	more, _ := filepath.Glob("../testdata/wasm/bad/*.wat")
	for _, wat := range append(wats, more...) {
		rel, _ := filepath.Rel("../testdata/wasm", strings.TrimSuffix(wat, ".wat")+".wasm")
		fresh, _ := os.ReadFile(filepath.Join(out, rel))
		committed, _ := os.ReadFile(filepath.Join("../testdata/wasm", rel))
		if string(fresh) != string(committed) {
			t.Errorf("testdata/wasm/%s is stale: run testdata/wasm/build.sh", rel)
		}
	}
}
