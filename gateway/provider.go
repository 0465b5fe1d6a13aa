package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// Modules is what the gateway needs from provider modules (DESIGN §6):
// whether a secret looks usable, how to present it upstream and how to
// read a failure. An error (no module, unsupported op, a module that
// trapped) makes the gateway use its built-in behaviour for that call.
type Modules interface {
	Check(ctx context.Context, provider string, req wasm.CheckRequest) (wasm.CheckResult, error)
	Headers(ctx context.Context, provider string, req wasm.HeadersRequest) (wasm.HeadersResult, error)
	Classify(ctx context.Context, provider string, req wasm.ClassifyRequest) (wasm.Classification, error)
}

// Selector chooses the credential candidates for one request (the policy
// engine).
type Selector interface {
	Decide(ctx context.Context, in *policy.Input) (policy.Decision, error)
}

// verdicts remembers each profile's module check, so that requests ask a
// module only when a credential is new or changed.
type verdicts struct {
	m sync.Map // profile id → *verdict
}

type verdict struct {
	secret  string // the checked secret, to notice a replaced credential
	expires int64
	valid   bool
	kind    string
}

// of returns the profile's status and kind as its module sees them, or
// the zero Verdict when there is no module verdict.
func (v *verdicts) of(ctx context.Context, mods Modules, id string, c store.Credential, now time.Time) Verdict {
	if mods == nil {
		return Verdict{}
	}
	secret := c.Secret()
	vd, _ := v.m.Load(id)
	cur, _ := vd.(*verdict)
	if cur == nil || cur.secret != secret || cur.expires != c.Expires || (c.Expires != 0 && cur.valid && c.Expires <= now.UnixMilli()) {
		req := wasm.CheckRequest{Type: c.Type, Secret: secret, Now: now.UnixMilli()}
		if c.Expires != 0 {
			e := c.Expires
			req.ExpiresAt = &e
		}
		res, err := mods.Check(ctx, c.Provider, req)
		if err != nil {
			return Verdict{}
		}
		cur = &verdict{secret: secret, expires: c.Expires, valid: res.Valid, kind: res.Kind}
		v.m.Store(id, cur)
	}
	return Verdict{Status: ModuleStatus(c, now, cur.valid), Kind: cur.kind}
}

// ModuleStatus is a credential's status once its provider module has
// checked it: its status from shape and expiry when the module accepts it;
// when the module rejects it, expired if it has expired, else invalid.
// Everything that builds policy input (the gateway, policy explain) and
// models status derive statuses this one way.
func ModuleStatus(c store.Credential, now time.Time, valid bool) string {
	st := ProfileStatus(c, now)
	// A refreshable login's access token may be past its expiry, which a
	// module rightly rejects; the refresh replaces it before use.
	if valid || st == StatusExpired || (st == StatusOK && c.Refreshable()) {
		return st
	}
	return StatusInvalid
}

// BuiltinHeaders is the generic way to present a credential, from the
// provider table: Anthropic API keys as x-api-key, Anthropic tokens as a
// Bearer with the OAuth beta, Google keys as x-goog-api-key, everything
// else as a Bearer.
func BuiltinHeaders(provider string, c store.Credential) wasm.HeadersResult {
	pr := providerOf(provider).Presentation(c.Type)
	set := map[string]string{pr.Header: pr.Prefix + c.Secret()}
	for name, v := range pr.Extra {
		set[name] = v
	}
	return wasm.HeadersResult{Set: set, Remove: pr.Remove}
}

// applyHeaders sets and removes h's headers on out, recording what it
// replaces in undo (nil: nothing recorded). anthropic-beta is merged with
// what the caller asked for rather than replacing it.
func applyHeaders(out http.Header, h wasm.HeadersResult, undo *headerUndo) {
	for _, name := range h.Remove {
		undo.del(out, name)
	}
	for name, v := range h.Set {
		if strings.EqualFold(name, "anthropic-beta") {
			if cur := out.Get(name); cur != "" && !strings.Contains(cur, v) {
				v = cur + "," + v
			}
		}
		undo.set(out, name, v)
	}
}

// BuiltinClassify reads an upstream failure with the status table of
// DESIGN §4. body is at most the first 8 KiB.
func BuiltinClassify(status int, h http.Header, body string, now time.Time) wasm.Classification {
	lower := strings.ToLower(body)
	c := wasm.Classification{}
	switch {
	case status < 400:
		return c
	case status == 402 || strings.Contains(lower, "credit balance") || strings.Contains(lower, "insufficient_quota") || strings.Contains(lower, "billing"):
		c.Failover, c.Reason = true, ReasonBilling
	case status == 429:
		c.Failover, c.Reason = true, ReasonRateLimit
	case status == 401 || status == 403:
		c.Failover, c.Reason = true, ReasonAuth
	case status == 404 && strings.Contains(lower, "model"):
		c.Failover, c.Reason = true, ReasonModelNotFound
	case status == 408:
		c.Failover, c.Reason = true, ReasonTimeout
	case status >= 500 && strings.Contains(lower, "overloaded"):
		c.Failover, c.Reason = true, ReasonRateLimit
	case status >= 500:
		c.Failover, c.Reason = true, ReasonTimeout
	case status == 400:
		c.Reason = ReasonFormat
	}
	if d, ok := RetryAfter(h, now); ok {
		ms := d.Milliseconds()
		c.RetryAfterMs = &ms
	}
	return c
}

// RetryAfter reads retry-after-ms, then Retry-After (seconds or an HTTP
// date). Values over a day are clamped.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
			return clampRetry(n / 1000), true
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return clampRetry(n), true
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return clampRetry(t.Sub(now).Seconds()), true
	}
	return 0, false
}

// maxRetryAfter caps every Retry-After, the provider's or a module's
// retryAfterMs: no answer cools a credential, or tells a client to wait,
// longer than a day.
const maxRetryAfter = 24 * time.Hour

// clampRetry turns seconds into a duration of at most a day.
func clampRetry(secs float64) time.Duration {
	if !(secs < maxRetryAfter.Seconds()) { // also catches NaN and +Inf
		return maxRetryAfter
	}
	return time.Duration(secs * float64(time.Second))
}

// clampRetryMs bounds a module's retryAfterMs to a day before anything
// multiplies it; a negative one means none.
func clampRetryMs(ms *int64) *int64 {
	switch {
	case ms == nil || *ms < 0:
		return nil
	case *ms > maxRetryAfter.Milliseconds():
		v := maxRetryAfter.Milliseconds()
		return &v
	}
	return ms
}

// clampRetryHeaders rewrites an upstream answer's Retry-After and
// retry-after-ms that ask for more than a day, so the client is told the
// wait the gateway applies.
func clampRetryHeaders(h http.Header, now time.Time) {
	for _, name := range [...]string{"Retry-After-Ms", "Retry-After"} { // canonical, as h's names are
		vs := h[name]
		if len(vs) == 0 || vs[0] == "" {
			continue
		}
		if d, ok := RetryAfter(http.Header{name: vs[:1]}, now); ok && d >= maxRetryAfter {
			if name == "Retry-After" {
				h.Set(name, strconv.FormatInt(int64(maxRetryAfter.Seconds()), 10))
			} else {
				h.Set(name, strconv.FormatInt(maxRetryAfter.Milliseconds(), 10))
			}
		}
	}
}
