// Package guest is the ABI v1 glue shared by OpenSoul's built-in provider
// modules: it decodes requests, dispatches to a Provider and encodes the
// answer. The exports themselves live in exports_wasip1.go so that the
// decoding and the providers' logic also build (and test) on the host.
package guest

import (
	"strconv"
	"strings"
)

// Request is an ABI v1 request; only the fields of its op are set.
type Request struct {
	Op        string
	Type      string
	Secret    string
	AccountID string // headers: the login's account id, when it has one
	ExpiresAt *int64
	Now       int64
	Status    int
	Headers   map[string]string
	Body      string

	lowerBody string // the start of Body in lower case, for Mentions
}

// Check is the answer to the check op.
type Check struct {
	Valid     bool
	Kind      string
	ExpiresAt *int64
	Reason    string
	Hint      string
}

// Headers is the answer to the headers op. BaseURL and StripPrefix, when
// set, send this credential's requests to another upstream (ABI 1
// revision 3): a ChatGPT-plan login is served by the ChatGPT backend.
type Headers struct {
	Set         map[string]string
	Remove      []string
	BaseURL     string
	StripPrefix string
}

// OAuth is the provider's OAuth client, declared in the info answer (ABI 1
// revision 2; wasm/ABI.md "info"). Source says where the values come from.
type OAuth struct {
	AuthURL, TokenURL, DeviceURL, ClientID string
	Scopes                                 []string
	RedirectPort                           int64
	RedirectPath                           string
	Params                                 map[string]string
	AccountIDClaim, EmailClaim             []string
	Source                                 string
}

// Class is the answer to the classify op. RetryAfterMs < 0 means none.
type Class struct {
	Failover     bool
	Reason       string
	RetryAfterMs int64
	Hint         string
	// Scope, with Reason "credential_scope", names the only client the
	// provider accepts the credential from (ABI 1 revision 5).
	Scope string
}

// Provider is what a module implements. A nil func answers unsupported_op.
type Provider struct {
	Name     string
	Version  string
	OAuth    *OAuth // nil: the provider has no OAuth sign-in for external tools
	Check    func(Request) Check
	Headers  func(Request) Headers
	Classify func(Request) Class
	// Observe reads an answer's rate-limit headers; ObserveHeaders are the
	// lower-case header name prefixes it wants (the host sends only those).
	Observe        func(Request) Observation
	ObserveHeaders []string
}

var registered *Provider

// Register installs the module's provider; call it from main's init.
func Register(p *Provider) { registered = p }

// Handle answers one encoded request.
func Handle(in []byte) []byte {
	p := registered
	if p == nil {
		return fail("internal", "no provider registered")
	}
	req, v, err := decodeRequest(in)
	if err != nil {
		return fail("bad_request", "request is not a valid JSON object")
	}
	if v != 1 {
		return fail("unsupported_version", "this module speaks ABI v1")
	}
	switch {
	case req.Op == "info":
		return encodeInfo(p)
	case req.Op == "check" && p.Check != nil:
		return encodeCheck(p.Check(req))
	case req.Op == "headers" && p.Headers != nil:
		return encodeHeaders(p.Headers(req))
	case req.Op == "classify" && p.Classify != nil:
		return encodeClass(p.Classify(req))
	case req.Op == "observe" && p.Observe != nil:
		return encodeObservation(p.Observe(req))
	}
	return fail("unsupported_op", "op "+strconv.Quote(req.Op)+" is not supported")
}

// ops declares the optional ops p answers (ABI v1 "ops" in info), so the
// host asks each of them instead of guessing from probe calls.
func (p *Provider) ops() []string {
	ops := []string{}
	if p.Check != nil {
		ops = append(ops, "check")
	}
	if p.Headers != nil {
		ops = append(ops, "headers")
	}
	if p.Classify != nil {
		ops = append(ops, "classify")
	}
	if p.Observe != nil {
		ops = append(ops, "observe")
	}
	return ops
}

func fail(code, msg string) []byte {
	return NewObject().Bool("ok", false).Open("error").String("code", code).String("message", msg).Bytes()
}

func encodeInfo(p *Provider) []byte {
	w := NewObject().Bool("ok", true).String("provider", p.Name).String("version", p.Version).
		Strings("ops", p.ops())
	if o := p.OAuth; o != nil {
		w.Open("oauth")
		opt := func(k, v string) {
			if v != "" {
				w.String(k, v)
			}
		}
		opt("authUrl", o.AuthURL)
		opt("tokenUrl", o.TokenURL)
		opt("deviceUrl", o.DeviceURL)
		opt("clientId", o.ClientID)
		if o.Scopes != nil {
			w.Strings("scopes", o.Scopes)
		}
		if o.RedirectPort != 0 {
			w.Int("redirectPort", &o.RedirectPort)
		}
		opt("redirectPath", o.RedirectPath)
		if o.Params != nil {
			w.Open("params")
			for _, k := range sortedKeys(o.Params) {
				w.String(k, o.Params[k])
			}
			w.Close()
		}
		if o.AccountIDClaim != nil {
			w.Strings("accountIdClaim", o.AccountIDClaim)
		}
		if o.EmailClaim != nil {
			w.Strings("emailClaim", o.EmailClaim)
		}
		opt("source", o.Source)
		w.Close()
	}
	if p.Observe != nil {
		w.Open("observe").Strings("headers", p.ObserveHeaders).Close()
	}
	return w.Bytes()
}

func encodeCheck(c Check) []byte {
	if c.Kind == "" {
		c.Kind = "unknown"
	}
	w := NewObject().Bool("ok", true).Bool("valid", c.Valid).String("kind", c.Kind).Int("expiresAt", c.ExpiresAt)
	if c.Reason != "" {
		w.String("reason", c.Reason)
	}
	if c.Hint != "" {
		w.String("hint", c.Hint)
	}
	return w.Bytes()
}

func encodeHeaders(h Headers) []byte {
	w := NewObject().Bool("ok", true).Open("set")
	for _, k := range sortedKeys(h.Set) {
		w.String(k, h.Set[k])
	}
	w.Close()
	if h.Remove == nil {
		h.Remove = []string{}
	}
	w.Strings("remove", h.Remove)
	if h.BaseURL != "" {
		w.String("baseUrl", h.BaseURL)
	}
	if h.StripPrefix != "" {
		w.String("stripPrefix", h.StripPrefix)
	}
	return w.Bytes()
}

func encodeClass(c Class) []byte {
	w := NewObject().Bool("ok", true).Bool("failover", c.Failover).String("reason", c.Reason)
	if c.RetryAfterMs >= 0 {
		w.Int("retryAfterMs", &c.RetryAfterMs)
	} else {
		w.Int("retryAfterMs", nil)
	}
	if c.Hint != "" {
		w.String("hint", c.Hint)
	}
	if c.Scope != "" {
		w.String("scope", c.Scope)
	}
	return w.Bytes()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ { // insertion sort: a handful of keys
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

// RetryAfterMs reads retry-after-ms, then retry-after as seconds; -1 when
// absent or not a number (an HTTP date needs a clock the guest lacks).
func RetryAfterMs(h map[string]string) int64 {
	if v, err := strconv.ParseFloat(strings.TrimSpace(h["retry-after-ms"]), 64); err == nil && v >= 0 {
		return int64(v)
	}
	if v, err := strconv.ParseFloat(strings.TrimSpace(h["retry-after"]), 64); err == nil && v >= 0 {
		return int64(v * 1000)
	}
	return -1
}

// StatusTable is DESIGN §4's table for a status code and body; modules
// start from it and refine.
func StatusTable(r *Request) Class {
	c := Class{RetryAfterMs: -1}
	switch {
	case r.Status == 429 || r.Status >= 500 && r.Mentions("overloaded"):
		c.Failover, c.Reason, c.RetryAfterMs = true, "rate_limit", RetryAfterMs(r.Headers)
	case r.Status == 402 || r.Mentions("credit balance"):
		c.Failover, c.Reason = true, "billing"
	case r.Status == 401 || r.Status == 403:
		c.Failover, c.Reason = true, "auth"
	case r.Status == 404:
		c.Reason = "model_not_found"
	case r.Status == 408 || r.Status >= 500:
		c.Failover, c.Reason = true, "timeout"
	case r.Status == 400 || r.Status == 413 || r.Status == 422:
		c.Reason = "format"
	case r.Status >= 200 && r.Status < 400:
		c.Reason = "ok"
	default:
		c.Reason = "unknown"
	}
	return c
}
