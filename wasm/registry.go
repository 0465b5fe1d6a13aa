package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Registry maps provider names to modules and answers the ABI ops for a
// provider, with per-credential caching of check and headers. Providers
// without a module, and ops a module does not support, get the generic
// behaviour: an Authorization: Bearer header and the DESIGN §4 table.
// It is safe for concurrent use.
type Registry struct {
	host    *Host
	entries map[string]*entry // fixed after NewRegistry
	checks  *resultCache[CheckResult]
	headers *resultCache[HeadersResult]
}

// entry is one provider's module, loaded on first use.
type entry struct {
	name    string
	source  string // "builtin" or the module's path
	file    string // builtin:<name>.wasm or the path; names the module in errors
	builtin bool   // bin comes from the embedded modules, on first use
	bin     []byte // a module file's bytes; nil for a generic provider
	readErr error
	binOnce sync.Once
	sumOnce sync.Once
	sum     [32]byte // SHA-256 of the module, computed on first use

	mu      sync.Mutex // guards the fields below
	mod     *module
	err     error
	retryAt time.Time // when a load that ran out of time may be tried again
	info    Info
	ops     map[string]bool
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
		host:    host,
		entries: map[string]*entry{},
		checks:  newResultCache[CheckResult](4096),
		headers: newResultCache[HeadersResult](4096),
	}
	for _, name := range BuiltinNames() {
		r.entries[name] = &entry{name: name, source: "builtin", file: "builtin:" + name + ".wasm", builtin: true}
	}
	var errs []error
	for name, path := range modules {
		if path == "" {
			if r.entries[name] == nil {
				r.entries[name] = &entry{name: name, source: "generic", file: "(none)"}
			}
			continue
		}
		e := &entry{name: name, source: path, file: path}
		e.bin, e.readErr = readModule(path)
		if e.readErr != nil {
			e.readErr = &ModuleError{Provider: name, File: path, Err: e.readErr}
			errs = append(errs, e.readErr)
		}
		r.entries[name] = e
	}
	return r, errs
}

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
		for name := range r.entries {
			providers = append(providers, name)
		}
		slices.Sort(providers)
	}
	errs := make([]error, len(providers))
	var wg sync.WaitGroup
	for i, name := range providers {
		e := r.entries[name]
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
		e.info, e.ops, err = probe(ctx, m)
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

// probe asks the module who it is and which ops it answers.
func probe(ctx context.Context, m *module) (Info, map[string]bool, error) {
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
			return info, nil, &ModuleError{Provider: m.provider, File: m.file, Op: p.op, Err: err}
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
			return info, nil, &ModuleError{Provider: m.provider, File: m.file, Op: p.op, Err: err}
		}
		ops[p.op] = true
		if p.op == OpInfo {
			info = resp.Info
		}
	}
	return info, ops, nil
}

func rootCause(err error) error {
	for _, s := range []error{ErrNotWasm, ErrInvalidModule, ErrMemoryLimit, ErrMissingExport, ErrABIVersion, ErrDeadline, ErrTrap,
		ErrResponseTooLarge, ErrBadResponse, ErrGuest, ErrClosed} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// module returns the provider's loaded module, or nil (and no error) when
// the provider has no module or the module does not support op.
func (r *Registry) module(ctx context.Context, provider, op string) (*module, *entry, error) {
	e := r.entries[provider]
	if e == nil {
		return nil, nil, nil
	}
	m, err := r.load(ctx, e)
	if err != nil || m == nil {
		return nil, e, err
	}
	e.mu.Lock()
	supported := e.ops[op]
	e.mu.Unlock()
	if !supported {
		return nil, e, nil
	}
	return m, e, nil
}

// invoke calls op on m and decodes the answer into out (which embeds
// envelope). It reports module failures once and redacts secret.
func (r *Registry) invoke(ctx context.Context, m *module, op string, req any, secret string, env *envelope, out any) error {
	raw, err := m.call(ctx, op, encodeRequest(op, req))
	if err == nil {
		err = decodeResponse(raw, env, out)
	}
	if err == nil || errors.Is(err, ErrUnsupportedOp) {
		return err
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	me := &ModuleError{Provider: m.provider, File: m.file, Op: op, Err: redactErr(err, secret)}
	r.host.report(me, rootCause(err))
	return me
}
