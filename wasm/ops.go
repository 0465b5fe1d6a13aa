package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// cacheKey identifies a credential (and whatever else the answer depends
// on) without keeping the secret.
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
	if c, ok := r.checks.get(key); ok && !stale(c, req.Now) {
		return c, nil
	}
	var diskKey string
	if e := r.entries[provider]; e != nil && e.hasModule() && e.readErr == nil && r.host.verdicts != nil {
		diskKey = verdictKey(key, e.moduleSum())
		if c, ok := r.host.verdicts.get(diskKey); ok && !stale(c, req.Now) {
			r.checks.put(key, c)
			return c, nil
		}
	}
	m, _, err := r.module(ctx, provider, OpCheck)
	if err != nil {
		return CheckResult{}, err
	}
	var res CheckResult
	if m == nil {
		res = genericCheck(req)
	} else {
		var resp struct {
			envelope
			CheckResult
		}
		err := r.invoke(ctx, m, OpCheck, req, req.Secret, &resp.envelope, &resp)
		switch {
		case errors.Is(err, ErrUnsupportedOp):
			res = genericCheck(req)
		case err != nil:
			return CheckResult{}, err
		default:
			res = resp.CheckResult
			if err := validCheck(res); err != nil {
				me := &ModuleError{Provider: m.provider, File: m.file, Op: OpCheck, Err: err}
				r.host.report(me, ErrBadResponse)
				return CheckResult{}, me
			}
			res.Reason, res.Hint = redact(res.Reason, req.Secret), redact(res.Hint, req.Secret)
		}
	}
	r.checks.put(key, res)
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
	key := cacheKey(OpHeaders, provider, req.Type, req.Secret, nil)
	if h, ok := r.headers.get(key); ok {
		return h, nil
	}
	m, _, err := r.module(ctx, provider, OpHeaders)
	if err != nil {
		return HeadersResult{}, err
	}
	var res HeadersResult
	if m == nil {
		res = genericHeaders(req)
	} else {
		var resp struct {
			envelope
			HeadersResult
		}
		err := r.invoke(ctx, m, OpHeaders, req, req.Secret, &resp.envelope, &resp)
		switch {
		case errors.Is(err, ErrUnsupportedOp):
			res = genericHeaders(req)
		case err != nil:
			return HeadersResult{}, err
		default:
			res = resp.HeadersResult
			if err := validHeaders(res); err != nil {
				me := &ModuleError{Provider: m.provider, File: m.file, Op: OpHeaders, Err: err}
				r.host.report(me, ErrBadResponse)
				return HeadersResult{}, me
			}
		}
	}
	r.headers.put(key, res)
	return res, nil
}

// Classify asks what an upstream answer means. It is not cached: it runs on
// failures only.
func (r *Registry) Classify(ctx context.Context, provider string, req ClassifyRequest) (Classification, error) {
	if len(req.Body) > MaxClassifyBody {
		req.Body = req.Body[:MaxClassifyBody]
	}
	m, _, err := r.module(ctx, provider, OpClassify)
	if err != nil {
		return Classification{}, err
	}
	if m == nil {
		return genericClassify(req), nil
	}
	var resp struct {
		envelope
		Classification
	}
	err = r.invoke(ctx, m, OpClassify, req, "", &resp.envelope, &resp)
	switch {
	case errors.Is(err, ErrUnsupportedOp):
		return genericClassify(req), nil
	case err != nil:
		return Classification{}, err
	}
	if !knownReasons[resp.Reason] {
		me := &ModuleError{Provider: m.provider, File: m.file, Op: OpClassify,
			Err: fmt.Errorf("%w: unknown reason %.40q", ErrBadResponse, resp.Reason)}
		r.host.report(me, ErrBadResponse)
		return Classification{}, me
	}
	return resp.Classification, nil
}

// Providers describes every provider the registry knows, loading modules
// that have not been loaded yet. A module that failed shows its error.
func (r *Registry) Providers(ctx context.Context) []ProviderInfo {
	r.Load(ctx)
	names := make([]string, 0, len(r.entries))
	for name := range r.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]ProviderInfo, 0, len(names))
	for _, name := range names {
		e := r.entries[name]
		e.mu.Lock()
		pi := ProviderInfo{Name: name, Source: e.source, Ops: []string{}}
		if e.err != nil {
			pi.Error = e.err.Error()
		} else if e.mod != nil {
			pi.ABIVersion, pi.Version = ABIVersion, e.info.Version
			for _, op := range []string{OpInfo, OpCheck, OpHeaders, OpClassify} {
				if e.ops[op] {
					pi.Ops = append(pi.Ops, op)
				}
			}
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
