package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// cacheKey identifies a credential (and whatever else the answer depends
// on) without keeping the secret. It is the same in every run, so the
// verdict file uses it too; the memory caches add the entry's gen (memKey).
func cacheKey(op, provider, typ, secret string, expiresAt *int64) [32]byte {
	h := sha256.New()
	for _, s := range []string{op, provider, typ, secret} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	if expiresAt != nil {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(*expiresAt))
		h.Write([]byte{1})
		h.Write(n[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// memKey keys e's answer for k in the memory caches: a module file that
// changes gets a new entry, so its answers are never mixed with the old's.
func (e *entry) memKey(k [32]byte) resultKey { return resultKey{gen: e.gen, sum: k} }

// genericKey keys the answers for a provider without an entry.
func genericKey(k [32]byte) resultKey { return resultKey{sum: k} }

func (e *entry) hasModule() bool { return e.builtin || e.bin != nil }

// bytes returns the module's binary; a built-in is copied out of the
// executable only when it is needed (2 MiB each).
func (e *entry) bytes() []byte {
	e.binOnce.Do(func() {
		if e.builtin {
			e.bin = builtinModule(e.name)
		}
	})
	return e.bin
}

func (e *entry) moduleSum() [32]byte {
	e.sumOnce.Do(func() { e.sum = sha256.Sum256(e.bytes()) })
	return e.sum
}

// stale reports whether a cached verdict may not be served at now: a valid
// verdict whose expiry has passed.
func stale(c CheckResult, now int64) bool {
	return c.Valid && c.ExpiresAt != nil && now > 0 && *c.ExpiresAt <= now
}

// Check asks provider's module whether a secret looks usable. Results are
// cached per credential, in memory and (by hash, in the cache dir) across
// runs; a cached valid result is recomputed once its expiry has passed (by
// req.Now).
func (r *Registry) Check(ctx context.Context, provider string, req CheckRequest) (CheckResult, error) {
	key := cacheKey(OpCheck, provider, req.Type, req.Secret, req.ExpiresAt)
	mk := genericKey(key)
	var diskKey string
	if e := r.entry(provider); e != nil {
		mk = e.memKey(key)
		if c, ok := r.checks.get(mk); ok && !stale(c, req.Now) {
			return c, nil
		}
		if e.hasModule() && e.readErr == nil && r.host.verdicts != nil {
			diskKey = verdictKey(key, e.moduleSum())
			if c, ok := r.host.verdicts.get(diskKey); ok && !stale(c, req.Now) {
				r.checks.put(mk, c)
				return c, nil
			}
		}
	} else if c, ok := r.checks.get(mk); ok && !stale(c, req.Now) {
		return c, nil
	}
	var resp struct {
		envelope
		CheckResult
	}
	m, err := r.ask(ctx, provider, OpCheck, req, req.Secret, &resp.envelope, &resp)
	var res CheckResult
	switch {
	case err != nil:
		return CheckResult{}, err
	case m == nil:
		res = genericCheck(req)
	default:
		res = resp.CheckResult
		if err := validCheck(res); err != nil {
			me := &ModuleError{Provider: m.provider, File: m.file, Op: OpCheck, Err: err}
			r.host.report(me, ErrBadResponse)
			return CheckResult{}, me
		}
		res.Reason, res.Hint = redact(res.Reason, req.Secret), redact(res.Hint, req.Secret)
	}
	r.checks.put(mk, res)
	if diskKey != "" {
		r.host.verdicts.put(diskKey, res)
	}
	return res, nil
}

// Headers asks how to present a secret upstream. Results are cached per
// credential, so the gateway's hot path makes no module call for a
// credential it has seen. The result is shared: treat it as read-only and
// apply it with HeadersResult.Apply.
func (r *Registry) Headers(ctx context.Context, provider string, req HeadersRequest) (HeadersResult, error) {
	key := r.headersSum(provider, req)
	mk := genericKey(key)
	if e := r.entry(provider); e != nil {
		mk = e.memKey(key)
	}
	if h, ok := r.headers.get(mk); ok {
		return h, nil
	}
	var resp struct {
		envelope
		HeadersResult
	}
	m, err := r.ask(ctx, provider, OpHeaders, req, req.Secret, &resp.envelope, &resp)
	var res HeadersResult
	switch {
	case err != nil:
		return HeadersResult{}, err
	case m == nil:
		res = genericHeaders(req)
	default:
		res = resp.HeadersResult
		if err := validHeaders(res); err != nil {
			me := &ModuleError{Provider: m.provider, File: m.file, Op: OpHeaders, Err: err}
			r.host.report(me, ErrBadResponse)
			return HeadersResult{}, me
		}
	}
	r.headers.put(mk, res)
	return res, nil
}

// headersKey is what a Headers answer depends on besides the module.
type headersKey struct{ provider, typ, account, secret string }

// headersSum is Headers' cacheKey for req, memoized (headerSums).
func (r *Registry) headersSum(provider string, req HeadersRequest) [32]byte {
	k := headersKey{provider: provider, typ: req.Type, account: req.AccountID, secret: req.Secret}
	if sum, ok := r.headerSums.get(k); ok {
		return sum
	}
	// The account id is part of what the answer depends on; NUL cannot
	// be in a type, so type+NUL+account is unambiguous.
	sum := cacheKey(OpHeaders, provider, req.Type+"\x00"+req.AccountID, req.Secret, nil)
	r.headerSums.put(k, sum)
	return sum
}

// Classify asks what an upstream answer means. It is not cached: it runs on
// failures only.
func (r *Registry) Classify(ctx context.Context, provider string, req ClassifyRequest) (Classification, error) {
	if len(req.Body) > MaxClassifyBody {
		req.Body = req.Body[:MaxClassifyBody]
	}
	var resp struct {
		envelope
		Classification
	}
	m, err := r.ask(ctx, provider, OpClassify, req, "", &resp.envelope, &resp)
	switch {
	case err != nil:
		return Classification{}, err
	case m == nil:
		return genericClassify(req), nil
	}
	if !knownReasons[resp.Reason] {
		me := &ModuleError{Provider: m.provider, File: m.file, Op: OpClassify,
			Err: fmt.Errorf("%w: unknown reason %.40q", ErrBadResponse, resp.Reason)}
		r.host.report(me, ErrBadResponse)
		return Classification{}, me
	}
	if s := resp.Scope; s != "" && (resp.Reason != ReasonCredentialScope || !validClientName(s)) {
		me := &ModuleError{Provider: m.provider, File: m.file, Op: OpClassify,
			Err: fmt.Errorf("%w: scope %.40q (a client name of lower-case letters, digits and '-', with reason credential_scope)", ErrBadResponse, s)}
		r.host.report(me, ErrBadResponse)
		return Classification{}, me
	}
	return resp.Classification, nil
}

// OAuth returns the OAuth client provider's module declares in its info
// answer (raw JSON), loading that module if needed; nil when it declares
// none or has no module.
func (r *Registry) OAuth(ctx context.Context, provider string) json.RawMessage {
	e := r.entry(provider)
	if e == nil {
		return nil
	}
	if m, err := r.load(ctx, e); err != nil || m == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.info.OAuth
}

// Providers describes every provider the registry knows, loading modules
// that have not been loaded yet. A module that failed shows its error.
func (r *Registry) Providers(ctx context.Context) []ProviderInfo {
	r.Load(ctx)
	entries := *r.entries.Load()
	names := slices.Sorted(maps.Keys(entries))
	out := make([]ProviderInfo, 0, len(names))
	for _, name := range names {
		e := entries[name]
		e.mu.Lock()
		pi := ProviderInfo{Name: name, Source: e.source, Ops: []string{}}
		if e.err != nil {
			pi.Error = e.err.Error()
		} else if e.mod != nil {
			pi.ABIVersion, pi.Version, pi.OpsDeclared = ABIVersion, e.info.Version, e.declared
			pi.OAuth = e.info.OAuth
			for _, op := range []string{OpInfo, OpCheck, OpHeaders, OpClassify, OpObserve} {
				if e.ops[op] {
					pi.Ops = append(pi.Ops, op)
				}
			}
			pi.Backoff = e.mod.brk.state()
		}
		e.mu.Unlock()
		out = append(out, pi)
	}
	return out
}

// CheckCall is one credential for CheckAll.
type CheckCall struct {
	Provider string
	Req      CheckRequest
}

// CheckOutcome is CheckAll's answer for one CheckCall.
type CheckOutcome struct {
	Result CheckResult
	Err    error
}

// CheckAll checks several credentials at once, in parallel, so that the
// modules it must load (cold: about a second each) load side by side. A
// command listing every profile (models status) should use it.
func (r *Registry) CheckAll(ctx context.Context, calls []CheckCall) []CheckOutcome {
	out := make([]CheckOutcome, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { out[i].Result, out[i].Err = r.Check(ctx, c.Provider, c.Req) })
	}
	wg.Wait()
	return out
}
