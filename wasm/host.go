package wasm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Defaults for Options' zero values.
const (
	DefaultCallTimeout      = 2 * time.Second
	DefaultMemoryLimitPages = 512 // 32 MiB per instance
	DefaultMaxResponseBytes = 64 << 10
	DefaultPoolWait         = time.Second
)

// Options tune a Host. The zero value is ready to use.
type Options struct {
	// CacheDir holds compiled modules, and the check verdicts of modules
	// on secrets (by hash), between runs; "" means
	// os.UserCacheDir()/opensoul/wazero. NoDiskCache keeps both in memory.
	CacheDir    string
	NoDiskCache bool
	// CallTimeout bounds every call into a module (default 2 s). A negative
	// value disables the deadline and what enforces it: wazero then omits
	// the termination check it compiles into every loop, which makes a Go
	// guest's call several times faster, but a module that loops hangs its
	// caller. Only benchmarks, or modules you wrote, should want that.
	CallTimeout time.Duration
	// MemoryLimitPages caps each instance's linear memory in 64 KiB pages.
	MemoryLimitPages uint32
	// MaxResponseBytes caps a module's answer (default 64 KiB).
	MaxResponseBytes int
	// MaxInstances bounds the live instances of one module (default
	// GOMAXPROCS, at least 2); callers beyond it wait for a free one, at
	// most PoolWait (default 1 s), then fail with ErrPoolBusy.
	MaxInstances int
	PoolWait     time.Duration
	// BreakerFailures consecutive calls of one module that hit the deadline
	// or trap (default 3) skip the module for BreakerBackoff (default 30 s,
	// doubling while it keeps failing, up to 10 min): its calls fail fast
	// with ErrBackoff. Opening and closing are logged once each.
	BreakerFailures int
	BreakerBackoff  time.Duration
	// BackoffFile, when set, mirrors the skipped modules for other
	// processes (ReadBackoffs); "" keeps them in memory (Registry.Providers).
	BackoffFile string
	// Now is the breaker's clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one record per distinct module failure.
	Logger *slog.Logger
}

// Host runs provider modules in one wazero runtime.
type Host struct {
	rt          wazero.Runtime
	cache       wazero.CompilationCache
	cacheDir    string       // the compiled modules on disk; "" when in memory
	compiling   func()       // tests: runs as each compile starts
	verdicts    *verdictFile // nil without a disk cache
	callTimeout time.Duration
	maxResponse int
	maxInst     int
	poolWait    time.Duration
	memPages    uint32
	brkFailures int
	brkBackoff  time.Duration
	now         func() time.Time
	log         *slog.Logger
	backoffs    *backoffs
	loads       atomic.Uint64 // modules compiled (or read from the compile cache)
	calls       atomic.Uint64 // calls into modules (opensoul_call)

	mu       sync.Mutex // guards the fields below
	reported map[string]bool
	closed   bool
}

// Loads counts the modules this host has compiled or read from the
// compilation cache: a gateway that is ready does no more of it for the
// providers it warmed.
func (h *Host) Loads() uint64 { return h.loads.Load() }

// Calls counts the calls that reached this host's modules (loading
// and probing a module count too): a gateway that is ready asks a module
// nothing more for the credentials it warmed.
func (h *Host) Calls() uint64 { return h.calls.Load() }

// NewHost starts a runtime. A cache directory that cannot be created is
// logged and replaced by an in-memory cache; it is not an error.
func NewHost(ctx context.Context, o Options) (*Host, error) {
	h := &Host{
		callTimeout: o.CallTimeout,
		maxResponse: o.MaxResponseBytes,
		maxInst:     o.MaxInstances,
		poolWait:    cmp.Or(o.PoolWait, DefaultPoolWait),
		memPages:    o.MemoryLimitPages,
		brkFailures: cmp.Or(o.BreakerFailures, DefaultBreakerFailures),
		brkBackoff:  cmp.Or(o.BreakerBackoff, DefaultBreakerBackoff),
		now:         o.Now,
		log:         o.Logger,
		backoffs:    &backoffs{path: o.BackoffFile},
		reported:    map[string]bool{},
	}
	if h.callTimeout == 0 {
		h.callTimeout = DefaultCallTimeout
	}
	if h.maxResponse <= 0 {
		h.maxResponse = DefaultMaxResponseBytes
	}
	if h.maxInst <= 0 {
		h.maxInst = max(runtime.GOMAXPROCS(0), 2)
	}
	if h.memPages == 0 {
		h.memPages = DefaultMemoryLimitPages
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if err := h.backoffs.reset(); err != nil { // a previous run's breakers are not ours
		h.log.Warn("cannot reset the module backoff file", "err", err)
	}
	h.cache = h.openCache(o)
	cfg := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(h.memPages).
		WithCloseOnContextDone(h.callTimeout > 0).
		WithCompilationCache(h.cache)
	h.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		_ = h.rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	return h, nil
}

func (h *Host) openCache(o Options) wazero.CompilationCache {
	if o.NoDiskCache {
		return wazero.NewCompilationCache()
	}
	dir := o.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			h.log.Warn("no user cache dir; provider modules will be compiled on every start", "err", err)
			return wazero.NewCompilationCache()
		}
		dir = filepath.Join(base, "opensoul", "wazero")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		h.log.Warn("cannot create the module cache dir; compiling in memory", "dir", dir, "err", err)
		return wazero.NewCompilationCache()
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		h.log.Warn("cannot use the module cache dir; compiling in memory", "dir", dir, "err", err)
		return wazero.NewCompilationCache()
	}
	h.verdicts = &verdictFile{path: filepath.Join(dir, verdictFileName), log: h.log}
	h.cacheDir = dir
	return c
}

// Close closes every module and instance. It is safe to call twice.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	if err := h.backoffs.reset(); err != nil {
		h.log.Warn("cannot reset the module backoff file", "err", err)
	}
	err := h.rt.Close(ctx)
	return errors.Join(err, h.cache.Close(ctx))
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// report logs a module failure the first time this kind of failure is seen
// for this module file.
func (h *Host) report(e *ModuleError, kind error) {
	key := e.File + "\x00" + kind.Error()
	h.mu.Lock()
	seen := h.reported[key]
	h.reported[key] = true
	h.mu.Unlock()
	if !seen {
		h.log.Error("provider module failed", "provider", e.Provider, "module", e.File, "op", e.Op, "err", e.Err)
	}
}

// forget drops what the host remembers of a retired module: its open
// breaker (the module that replaced it starts afresh) and which of its
// failures were logged (the new file's are logged again).
func (h *Host) forget(m *module) {
	if b := m.brk.state(); b != nil {
		if err := h.backoffs.set(*b, false); err != nil {
			h.log.Warn("cannot record a module backoff", "err", err)
		}
	}
	h.mu.Lock()
	for key := range h.reported {
		if strings.HasPrefix(key, m.file+"\x00") {
			delete(h.reported, key)
		}
	}
	h.mu.Unlock()
}

// breakerChanged logs a breaker that opened or closed, once each, and
// mirrors it to the backoff file.
func (h *Host) breakerChanged(c change, b Backoff) {
	switch c {
	case opened:
		h.log.Warn("provider module skipped after repeated failures; its provider uses the built-in behaviour meanwhile",
			"provider", b.Provider, "module", b.Module, "failures", b.Failures, "until", b.Until.Format(time.RFC3339), "err", b.Error)
	case closed:
		h.log.Info("provider module back in service", "provider", b.Provider, "module", b.Module, "skippedSince", b.Since.Format(time.RFC3339))
	case unchanged:
		return
	}
	if err := h.backoffs.set(b, c != closed); err != nil {
		h.log.Warn("cannot record a module backoff", "err", err)
	}
}

// wantExports are the functions ABI v1 requires, with their signatures.
var wantExports = map[string][2][]api.ValueType{
	"opensoul_abi_version": {nil, {api.ValueTypeI32}},
	"opensoul_alloc":       {{api.ValueTypeI32}, {api.ValueTypeI32}},
	"opensoul_free":        {{api.ValueTypeI32, api.ValueTypeI32}, nil},
	"opensoul_call":        {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
}

// load compiles a module, checks its exports and ABI version, and returns
// it with one warm instance in its pool.
func (h *Host) load(ctx context.Context, provider, file string, bin []byte) (*module, error) {
	fail := func(err error) (*module, error) {
		return nil, &ModuleError{Provider: provider, File: file, Err: err}
	}
	if h.isClosed() {
		return fail(ErrClosed)
	}
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return fail(ErrNotWasm)
	}
	h.loads.Add(1)
	cm, err := h.compile(ctx, provider, file, bin)
	if err != nil {
		if strings.Contains(err.Error(), "over limit") {
			return fail(fmt.Errorf("%w: %v", ErrMemoryLimit, err))
		}
		return fail(fmt.Errorf("%w: %v", ErrInvalidModule, err))
	}
	if err := checkExports(cm); err != nil {
		_ = cm.Close(ctx)
		return fail(err)
	}
	m := &module{
		host:     h,
		provider: provider,
		file:     file,
		compiled: cm,
		idle:     make(chan *instance, h.maxInst),
		slots:    make(chan struct{}, h.maxInst),
		brk:      &breaker{threshold: h.brkFailures, base: h.brkBackoff},
	}
	in, err := m.instantiate(ctx)
	if err != nil {
		_ = cm.Close(ctx)
		return fail(err)
	}
	v, err := in.abiVersion(ctx, h.initTimeout())
	if err == nil && v != ABIVersion {
		err = fmt.Errorf("%w: module speaks %d, host speaks %d", ErrABIVersion, v, ABIVersion)
	}
	if err != nil {
		_ = in.mod.Close(ctx)
		_ = cm.Close(ctx)
		return fail(err)
	}
	m.slots <- struct{}{}
	m.idle <- in
	return m, nil
}

// compile compiles bin, or reads it from the disk cache, which other
// processes share: wazero writes each entry to a temp file, syncs and
// renames it, so a reader sees a whole entry or none. An entry that is
// damaged all the same (wazero checks its checksum and fails the compile)
// is removed, with the other compiled entries, and the module compiled
// again; an entry that cannot be written (a full disk) leaves the module
// compiled in memory, where the second try finds it.
func (h *Host) compile(ctx context.Context, provider, file string, bin []byte) (wazero.CompiledModule, error) {
	if h.compiling != nil {
		h.compiling()
	}
	cm, err := h.rt.CompileModule(ctx, bin)
	if err == nil || h.cacheDir == "" {
		return cm, err
	}
	var pathErr *fs.PathError
	var linkErr *os.LinkError
	switch {
	case strings.HasPrefix(err.Error(), "compilationcache:"):
		n := clearCompiled(h.cacheDir)
		h.log.Warn("a compiled module in the module cache is damaged; the cache's compiled modules were removed and this one is compiled again",
			"provider", provider, "module", file, "dir", h.cacheDir, "removed", n, "err", err)
	case errors.As(err, &pathErr) || errors.As(err, &linkErr):
		h.log.Warn("cannot use the module cache; the module is compiled in memory", "provider", provider, "module", file, "dir", h.cacheDir, "err", err)
	default:
		return nil, err
	}
	return h.rt.CompileModule(ctx, bin)
}

// clearCompiled removes the compiled modules from a cache dir (wazero
// keeps them as <dir>/wazero-<version>-<arch>-<os>/<sha256 hex>) and
// returns how many. Temp files other processes are writing are left
// alone, and so are the check verdicts.
func clearCompiled(dir string) int {
	paths, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	n := 0
	for _, p := range paths {
		if name := filepath.Base(p); len(name) == 64 && strings.Trim(name, "0123456789abcdef") == "" && os.Remove(p) == nil {
			n++
		}
	}
	return n
}

func checkExports(cm wazero.CompiledModule) error {
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: memory", ErrMissingExport)
	}
	fns := cm.ExportedFunctions()
	for _, name := range []string{"opensoul_abi_version", "opensoul_alloc", "opensoul_free", "opensoul_call"} {
		def, ok := fns[name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrMissingExport, name)
		}
		want := wantExports[name]
		if !slices.Equal(def.ParamTypes(), want[0]) || !slices.Equal(def.ResultTypes(), want[1]) {
			return fmt.Errorf("%w: %s has type %s -> %s", ErrMissingExport, name, typeNames(def.ParamTypes()), typeNames(def.ResultTypes()))
		}
	}
	return nil
}

func typeNames(ts []api.ValueType) string {
	s := "("
	for i, t := range ts {
		if i > 0 {
			s += ","
		}
		s += api.ValueTypeName(t)
	}
	return s + ")"
}

// initTimeout bounds instantiation (a Go guest starts its runtime there).
func (h *Host) initTimeout() time.Duration {
	return max(h.callTimeout, 5*time.Second)
}
