package wasm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Registry maps provider names to modules and answers the ABI ops for a
// provider, with per-credential caching of check and headers. Providers
// without a module, and ops a module does not support, get the generic
// behaviour: an Authorization: Bearer header and the DESIGN §4 table.
// It is safe for concurrent use.
type Registry struct {
	// Set by NewRegistry, never changed.
	host    *Host
	checks  *resultCache[resultKey, CheckResult]
	headers *resultCache[resultKey, HeadersResult]
	// headerSums memoizes Headers' cacheKey: requests ask for the same few
	// credentials' headers over and over, and a sha256 over the secret on
	// every one was ~1% of the gateway's CPU. It holds the secrets, as
	// the headers answers themselves do (the secret is in them).
	headerSums *resultCache[headersKey, [32]byte]

	// Replaced whole by Update (copy on write); readers Load once per call.
	entries atomic.Pointer[map[string]*entry]
	gens    atomic.Uint64 // numbers entries, so a replaced module's cached answers are never served

	updateMu sync.Mutex // serializes Update; guards the fields below
	stamps   map[string]fileStamp
	refused  map[string]refusal
}

// entry is one provider's module, loaded on first use. A module file that
// changes gets a new entry (Update); an entry's module never changes.
type entry struct {
	name    string
	gen     uint64 // keys this entry's answers in the result caches
	source  string // "builtin", "generic" or the module's path
	file    string // builtin:<name>.wasm or the path; names the module in errors
	builtin bool   // bin comes from the embedded modules, on first use
	bin     []byte // a module file's bytes; nil for a generic provider
	readErr error
	binOnce sync.Once
	sumOnce sync.Once
	sum     [32]byte // SHA-256 of the module, computed on first use

	mu       sync.Mutex // guards the fields below
	mod      *module
	err      error
	retryAt  time.Time // when a load that ran out of time may be tried again
	info     Info
	ops      map[string]bool // ops the module answers (declared, or probed)
	declared bool            // ops come from the module's info declaration

	observe atomic.Pointer[[]string] // observe's header prefixes, set at load; read per answer
}

// loadRetry is how long a module whose load hit the deadline (perhaps a
// busy machine, not a broken module) stays failed before another try.
const loadRetry = 30 * time.Second

// maxModuleBytes bounds a module file read from disk.
const maxModuleBytes = 64 << 20

// NewRegistry knows the built-in modules plus modules, a map from provider
// name to a module file ("" keeps the built-in, or the generic behaviour
// for a provider without one). Modules are compiled on first use or by
// Load. The errors name the module files that could not be read; those
// providers fail on use, and every other provider keeps working.
func NewRegistry(ctx context.Context, host *Host, modules map[string]string) (*Registry, []error) {
	r := &Registry{
		host:       host,
		checks:     newResultCache[resultKey, CheckResult](4096),
		headers:    newResultCache[resultKey, HeadersResult](4096),
		headerSums: newResultCache[headersKey, [32]byte](4096),
		stamps:     map[string]fileStamp{},
		refused:    map[string]refusal{},
	}
	entries := map[string]*entry{}
	for _, name := range BuiltinNames() {
		entries[name] = r.newEntry(name, "")
	}
	var errs []error
	for name, path := range modules {
		if path == "" && entries[name] != nil {
			continue
		}
		if path != "" {
			r.stamps[path] = stampOf(path)
		}
		e := r.newEntry(name, path)
		if e.readErr != nil {
			errs = append(errs, e.readErr)
		}
		entries[name] = e
	}
	r.entries.Store(&entries)
	return r, errs
}

// newEntry is provider name's entry for a module file, or with path "" its
// built-in module or (without one) the generic behaviour. A file that
// cannot be read makes an entry whose every use fails with the error.
func (r *Registry) newEntry(name, path string) *entry {
	e := &entry{name: name, gen: r.gens.Add(1)}
	switch {
	case path != "":
		e.source, e.file = path, path
		e.bin, e.readErr = readModule(path)
		if e.readErr != nil {
			e.readErr = &ModuleError{Provider: name, File: path, Err: e.readErr}
		}
	case isBuiltin(name):
		e.source, e.file, e.builtin = "builtin", "builtin:"+name+".wasm", true
	default:
		e.source, e.file = "generic", "(none)"
	}
	return e
}

// entry returns provider's current entry, or nil.
func (r *Registry) entry(provider string) *entry { return (*r.entries.Load())[provider] }

func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxModuleBytes {
		return nil, fmt.Errorf("%w: file is %d bytes, the limit is %d", ErrNotWasm, st.Size(), maxModuleBytes)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// Load compiles and starts the named providers' modules (all when none are
// named) in parallel, and returns one error per module that failed.
func (r *Registry) Load(ctx context.Context, providers ...string) []error {
	if len(providers) == 0 {
		providers = slices.Sorted(maps.Keys(*r.entries.Load()))
	}
	errs := make([]error, len(providers))
	var wg sync.WaitGroup
	for i, name := range providers {
		e := r.entry(name)
		if e == nil {
			continue
		}
		wg.Go(func() { _, errs[i] = r.load(ctx, e) })
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// load returns e's module, loading it the first time. A load that failed
// because ctx ended is retried next time, one that hit the call deadline
// after loadRetry; any other failure is final.
func (r *Registry) load(ctx context.Context, e *entry) (*module, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil && !e.retryAt.IsZero() && time.Now().After(e.retryAt) {
		e.err, e.retryAt = nil, time.Time{}
	}
	if e.mod != nil || e.err != nil {
		return e.mod, e.err
	}
	if e.readErr != nil {
		e.err = e.readErr
		r.host.report(e.readErr.(*ModuleError), errors.Unwrap(e.readErr))
		return nil, e.err
	}
	if !e.hasModule() { // generic
		return nil, nil
	}
	m, err := r.host.load(ctx, e.name, e.file, e.bytes())
	if err == nil {
		e.info, e.ops, e.declared, err = probe(ctx, m)
		if err != nil {
			m.retire()
		} else if prefixes := observeDecl(e.info.Observe); e.ops[OpObserve] && len(prefixes) > 0 {
			e.observe.Store(&prefixes)
		} else {
			e.observe.Store(nil) // a new version may stop observing
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var me *ModuleError
		if !errors.As(err, &me) {
			me = &ModuleError{Provider: e.name, File: e.file, Err: err}
		}
		r.host.report(me, rootCause(err))
		e.err = me
		if errors.Is(err, ErrDeadline) {
			e.retryAt = time.Now().Add(loadRetry)
		}
		return nil, e.err
	}
	e.mod = m
	return m, nil
}

// probe asks the module who it is and which ops it answers. A module whose
// info declares its ops ("ops", ABI v1 revision 1) is taken at its word.
// For an older module each op is tried once; that only fills the list
// `providers list` shows: such a module is still asked every op, and an
// unsupported_op answer gets the generic behaviour for that call alone.
func probe(ctx context.Context, m *module) (Info, map[string]bool, bool, error) {
	var info Info
	ops := map[string]bool{}
	probes := []struct {
		op  string
		req any
	}{
		{OpInfo, nil},
		{OpCheck, CheckRequest{}},
		{OpHeaders, HeadersRequest{}},
		{OpClassify, ClassifyRequest{Status: 500, Headers: map[string]string{}}},
	}
	for _, p := range probes {
		raw, err := m.call(ctx, p.op, encodeRequest(p.op, p.req))
		if err != nil {
			return info, nil, false, &ModuleError{Provider: m.provider, File: m.file, Op: p.op, Err: err}
		}
		var resp struct {
			envelope
			Info
		}
		err = decodeResponse(raw, &resp.envelope, &resp)
		switch {
		case errors.Is(err, ErrUnsupportedOp):
			continue
		case err != nil:
			return info, nil, false, &ModuleError{Provider: m.provider, File: m.file, Op: p.op, Err: err}
		}
		ops[p.op] = true
		if p.op != OpInfo {
			continue
		}
		info = resp.Info
		if info.Ops != nil {
			for _, op := range info.Ops {
				if op == OpCheck || op == OpHeaders || op == OpClassify || op == OpObserve {
					ops[op] = true // unknown names: ops of a later revision
				}
			}
			info.Ops = nil
			return info, ops, true, nil
		}
	}
	return info, ops, false, nil
}

func rootCause(err error) error {
	for _, s := range []error{ErrNotWasm, ErrInvalidModule, ErrMemoryLimit, ErrMissingExport, ErrABIVersion, ErrDeadline, ErrTrap,
		ErrResponseTooLarge, ErrBadResponse, ErrGuest, ErrPoolBusy, ErrClosed} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// ask sends op to provider's module and decodes the answer into out
// (which embeds env). It returns the module that answered, or nil (and no
// error) when the caller should use the generic behaviour: no module, an
// op the module does not declare, or an unsupported_op answer. A module
// its breaker has taken out of service fails fast with ErrBackoff. Module
// failures are reported once, with secret redacted.
func (r *Registry) ask(ctx context.Context, provider, op string, req any, secret string, env *envelope, out any) (*module, error) {
	for range 3 { // a module replaced under this call: ask the new one
		e := r.entry(provider)
		if e == nil {
			return nil, nil
		}
		m, err := r.load(ctx, e)
		if errors.Is(err, errRetired) {
			continue
		}
		if err != nil || m == nil {
			return nil, err
		}
		e.mu.Lock()
		supported := !e.declared || e.ops[op]
		e.mu.Unlock()
		if !supported {
			return nil, nil
		}
		raw, err := m.call(ctx, op, encodeRequest(op, req))
		if errors.Is(err, errRetired) {
			continue
		}
		if err == nil {
			err = decodeResponse(raw, env, out)
		}
		switch {
		case err == nil:
			return m, nil
		case errors.Is(err, ErrUnsupportedOp):
			return nil, nil
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return nil, err
		}
		me := &ModuleError{Provider: m.provider, File: m.file, Op: op, Err: redactErr(err, secret)}
		if !errors.Is(err, ErrBackoff) { // the breaker logs its own opening
			r.host.report(me, rootCause(err))
		}
		return nil, me
	}
	return nil, &ModuleError{Provider: provider, File: "(replaced)", Op: op, Err: errRetired}
}
