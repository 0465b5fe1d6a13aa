package wasm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// compileChildEnv, when set, makes TestCompileCacheChild a child process
// of TestCompileCacheSharedByProcesses: it names the cache dir to use.
const compileChildEnv = "OPENSOUL_TEST_COMPILE_CACHE_CHILD"

// childHosts is how many hosts each child process starts at once; each
// has its own wazero cache (as separate processes have), all on one dir.
const childHosts = 4

// TestCompileCacheSharedByProcesses: gateways and CLI commands started at
// once share the compiled-module cache. Three processes, each with four
// hosts, compile the same module into one empty cache dir at the same
// time: every host loads it and answers, no temp file is left behind,
// and the entry left is whole (a later host reads it without finding it
// damaged).
func TestCompileCacheSharedByProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 3)
	errs := make([]error, 3)
	for i := range outs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCompileCacheChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), compileChildEnv+"="+dir)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		wg.Go(func() { errs[i] = cmd.Run() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || !strings.Contains(outs[i].String(), fmt.Sprintf("loaded %d hosts", childHosts)) {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i].String())
		}
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	var compiled int
	for _, p := range entries {
		if strings.Contains(filepath.Base(p), ".tmp") {
			t.Errorf("temp file left in the cache: %s", p)
		} else {
			compiled++
		}
	}
	if compiled != 1 {
		t.Errorf("%d compiled entries in the cache, want 1: %v", compiled, entries)
	}
	logs := loadAcme(t, dir)
	if strings.Contains(logs, "damaged") {
		t.Errorf("the entry the processes left is damaged:\n%s", logs)
	}
}

// TestCompileCacheChild is TestCompileCacheSharedByProcesses's child: it
// starts childHosts hosts on the cache dir at once and loads acme in each.
func TestCompileCacheChild(t *testing.T) {
	dir := os.Getenv(compileChildEnv)
	if dir == "" {
		t.Skip("a child process of TestCompileCacheSharedByProcesses")
	}
	var wg sync.WaitGroup
	for range childHosts {
		wg.Go(func() { loadAcme(t, dir) })
	}
	wg.Wait()
	if !t.Failed() {
		fmt.Printf("loaded %d hosts\n", childHosts)
	}
}

// TestCompileCacheDamagedEntry: a compiled module damaged on disk does not
// make its provider unusable: the entry is removed, the module compiled
// again and cached whole, with a warning naming the cache dir.
func TestCompileCacheDamagedEntry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if logs := loadAcme(t, dir); strings.Contains(logs, "damaged") {
		t.Fatalf("first compile: %s", logs)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	if len(entries) != 1 {
		t.Fatalf("cache entries: %v", entries)
	}
	data, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff // the executable code: the checksum no longer matches
	if err := os.WriteFile(entries[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := loadAcme(t, dir)
	if !strings.Contains(logs, "damaged") || !strings.Contains(logs, dir) {
		t.Errorf("no warning naming the cache dir for the damaged entry:\n%s", logs)
	}
	if logs := loadAcme(t, dir); strings.Contains(logs, "damaged") {
		t.Errorf("the entry compiled again is damaged too:\n%s", logs)
	}
}

// loadAcme starts a host on the cache dir, loads the acme module and asks
// it a check; it returns the host's log.
func loadAcme(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	h, err := NewHost(ctx, Options{CacheDir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Error(err)
		return ""
	}
	defer h.Close(ctx)
	r, errs := NewRegistry(ctx, h, map[string]string{"acme": acmeWasm})
	if errs = append(errs, r.Load(ctx, "acme")...); len(errs) > 0 {
		t.Errorf("load: %v\n%s", errs, logs)
		return logs.String()
	}
	if got, err := r.Check(ctx, "acme", CheckRequest{Type: "api_key", Secret: "acme-123"}); err != nil || !got.Valid {
		t.Errorf("check: %+v %v", got, err)
	}
	return logs.String()
}

// TestLoadCompilesInParallel: Load compiles the modules it is given at
// the same time. Each compile waits until both have started, so modules
// compiled one after the other would wait out the bound and fail.
func TestLoadCompilesInParallel(t *testing.T) {
	t.Parallel()
	builtins(t) // anthropic is in the shared cache: only acme is compiled
	h, _ := newTestHost(t, Options{})
	var started sync.WaitGroup
	started.Add(2)
	both := make(chan struct{})
	go func() { started.Wait(); close(both) }()
	h.compiling = func() {
		started.Done()
		select {
		case <-both:
		case <-time.After(20 * time.Second):
			t.Error("a compile waited 20 s for the other to start: Load compiles one module at a time")
		}
	}
	r, errs := NewRegistry(context.Background(), h, map[string]string{"acme": acmeWasm})
	if errs = append(errs, r.Load(context.Background(), "acme", "anthropic")...); len(errs) > 0 {
		t.Fatal(errs)
	}
	select {
	case <-both:
	default:
		t.Error("Load returned before both modules were compiled")
	}
}
