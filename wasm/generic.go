package wasm

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// genericCheck is the verdict for a provider without a module: a non-empty
// secret without whitespace that has not expired.
func genericCheck(r CheckRequest) CheckResult {
	kind := KindUnknown
	switch r.Type {
	case "api_key":
		kind = KindAPIKey
	case "oauth":
		kind = KindOAuthAccess
	}
	c := CheckResult{Kind: kind, ExpiresAt: r.ExpiresAt}
	switch {
	case strings.TrimSpace(r.Secret) == "":
		c.Reason = "the secret is empty"
	case strings.ContainsAny(r.Secret, " \t\r\n"):
		c.Reason = "the secret contains whitespace or a line break"
	case r.ExpiresAt != nil && r.Now > 0 && *r.ExpiresAt <= r.Now:
		c.Reason = "the credential has expired"
	default:
		c.Valid = true
	}
	return c
}

// genericHeaders presents a secret as Authorization: Bearer, removing
// x-api-key (where a client may have put the gateway's own token).
func genericHeaders(r HeadersRequest) HeadersResult {
	return HeadersResult{Set: map[string]string{"authorization": "Bearer " + r.Secret}, Remove: []string{"x-api-key"}}
}

// genericClassify is DESIGN §4's table, used for providers without a
// module and for ops a module does not support.
func genericClassify(r ClassifyRequest) Classification {
	body := strings.ToLower(r.Body)
	c := Classification{}
	switch {
	case r.Status == 429 || r.Status >= 500 && strings.Contains(body, "overloaded"):
		c.Failover, c.Reason, c.RetryAfterMs = true, ReasonRateLimit, retryAfter(r.Headers, time.Now())
	case r.Status == 402 || strings.Contains(body, "credit balance"):
		c.Failover, c.Reason = true, ReasonBilling
	case r.Status == 401 || r.Status == 403:
		c.Failover, c.Reason = true, ReasonAuth
	case r.Status == 404:
		c.Reason = ReasonModelNotFound
	case r.Status == 408 || r.Status >= 500:
		c.Failover, c.Reason = true, ReasonTimeout
	case r.Status == 400 || r.Status == 413 || r.Status == 422:
		c.Reason = ReasonFormat
	case r.Status >= 200 && r.Status < 400:
		c.Reason = ReasonOK
	default:
		c.Reason = ReasonUnknown
	}
	return c
}

// retryAfter reads retry-after-ms, then retry-after as seconds or an HTTP
// date, from lower-cased headers. It returns nil when there is none.
func retryAfter(h map[string]string, now time.Time) *int64 {
	if v, err := strconv.ParseFloat(strings.TrimSpace(h["retry-after-ms"]), 64); err == nil && v >= 0 {
		ms := int64(v)
		return &ms
	}
	s := strings.TrimSpace(h["retry-after"])
	if s == "" {
		return nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 {
		ms := int64(v * 1000)
		return &ms
	}
	if t, err := http.ParseTime(s); err == nil {
		ms := max(t.Sub(now).Milliseconds(), 0)
		return &ms
	}
	return nil
}
