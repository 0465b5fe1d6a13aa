package gateway

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	providers "github.com/opensoul/opensoul/gateway/provider"
)

// Attempt is one try of one credential on one model.
type Attempt struct {
	Profile string `json:"profile"`
	Model   string `json:"model,omitempty"`
	Status  int    `json:"status,omitempty"` // upstream status; 0 when none came
	Reason  string `json:"reason,omitempty"` // empty when it succeeded
	Hint    string `json:"hint,omitempty"`
	// Scope is the one client the provider accepts the credential from
	// (a credential_scope answer that scoped the profile instead of
	// disabling it); "" otherwise.
	Scope string `json:"scope,omitempty"`
	// Recovery is when the profile may serve again (epoch ms), 0 if now.
	Recovery int64 `json:"recovery,omitempty"`
}

// HTTPError is an answer the gateway gives itself. Msg goes to the client;
// Err is logged. Neither ever holds a secret.
type HTTPError struct {
	Code       int
	Type       string // a reason or error class; mapped to each API's names
	Msg        string
	RetryAfter time.Duration // sets Retry-After when positive
	// NoRetry tells clients that retrying soon cannot help: the answer
	// carries x-should-retry: false, which the official SDKs honour (they
	// show the error at once instead of retrying for minutes).
	NoRetry bool
	Err     error
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e *HTTPError) Unwrap() error { return e.Err }

// ErrExhausted is wrapped by the error returned when every candidate failed.
var ErrExhausted = errors.New("no credential could serve the request")

// exhaustedError carries every attempt of a request that found no
// credential to serve it.
type exhaustedError struct {
	httpErr *HTTPError
}

func (e *exhaustedError) Error() string { return e.httpErr.Error() }
func (e *exhaustedError) Unwrap() error { return ErrExhausted }

// writeError answers in the provider's own error shape (the provider
// table's Errors): Anthropic's {"type":"error","error":{...}} or OpenAI's
// {"error":{...}}, which OpenRouter and most others share.
func writeError(w http.ResponseWriter, provider string, e *HTTPError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	if e.NoRetry {
		h.Set("X-Should-Retry", "false")
	}
	var body any
	if providerOf(provider).Errors == providers.ErrorsAnthropic {
		body = map[string]any{"type": "error", "error": map[string]any{"type": anthropicType(e.Code, e.Type), "message": e.Msg}}
	} else {
		body = map[string]any{"error": map[string]any{"message": e.Msg, "type": openAIType(e.Code, e.Type), "code": openAICode(e.Code, e.Type)}}
	}
	data, _ := json.Marshal(body)
	w.WriteHeader(e.Code)
	w.Write(append(data, '\n'))
}

func anthropicType(code int, reason string) string {
	switch reason {
	case ReasonRateLimit:
		return "rate_limit_error"
	case ReasonAuth:
		return "authentication_error"
	case ReasonCredentialScope:
		return "permission_error"
	case ReasonBilling:
		return "billing_error"
	case ReasonModelNotFound:
		return "not_found_error"
	}
	switch {
	case code == http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case code == http.StatusUnauthorized:
		return "authentication_error"
	case code == http.StatusForbidden:
		return "permission_error"
	case code == http.StatusNotFound:
		return "not_found_error"
	case code == http.StatusTooManyRequests:
		return "rate_limit_error"
	case code == 529 || code == http.StatusServiceUnavailable && reason != "no_credential":
		return "overloaded_error"
	case code >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

func openAIType(code int, reason string) string {
	switch {
	case reason == ReasonRateLimit || code == http.StatusTooManyRequests:
		return "rate_limit_error"
	case reason == ReasonAuth || code == http.StatusUnauthorized:
		return "authentication_error"
	case reason == ReasonCredentialScope || code == http.StatusForbidden:
		return "permission_error"
	case reason == ReasonBilling:
		return "insufficient_quota"
	case code >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func openAICode(code int, reason string) string {
	if reason != "" {
		return reason
	}
	switch code {
	case http.StatusUnauthorized:
		return "invalid_api_key"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusNotFound:
		return "not_found"
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "_"))
}

// DefaultRetryWaitMax bounds the wait the gateway asks a client to retry
// after (Config.RetryWaitMax): a longer recovery is answered as final.
const DefaultRetryWaitMax = time.Minute

// exhausted builds the answer for a request none of whose candidates
// could serve: every attempt's profile and reason, the profiles skipped
// because they are cooling, and the earliest recovery.
//
// When waiting helps soon (a rate limit or cooldown that ends within
// waitMax) the answer is 429 with Retry-After, so SDKs back off and
// retry. Otherwise retrying cannot help soon (every candidate disabled, or
// cooling for longer than waitMax): the answer carries x-should-retry:
// false, so clients show it at once, and its status follows the reason —
// never 401, which means a wrong gateway token: a credential the provider
// rejected is 503. The status depends only on the reason, so a disabled
// profile answers the same on the first request and every later one.
func exhausted(provider, model string, attempts []Attempt, cooling []Attempt, now time.Time, waitMax time.Duration) *HTTPError {
	earliest, soon := int64(0), int64(0) // any recovery; a recovery waiting fixes
	limit := now.Add(waitMax).UnixMilli()
	for _, a := range slices.Concat(attempts, cooling) {
		if a.Recovery <= now.UnixMilli() || a.Recovery >= DisabledUntilChanged {
			continue
		}
		if earliest == 0 || a.Recovery < earliest {
			earliest = a.Recovery
		}
		waitable := a.Reason == ReasonRateLimit || a.Reason == ReasonTimeout || a.Reason == ReasonCooldown
		if waitable && a.Recovery <= limit && (soon == 0 || a.Recovery < soon) {
			soon = a.Recovery
		}
	}
	e := &HTTPError{Code: http.StatusBadGateway, Type: ReasonTimeout}
	final := func(reason string, upstream int) {
		e.Type, e.Code, e.NoRetry = reason, statusForReason(reason, upstream), true
		switch {
		case e.Code == http.StatusUnauthorized:
			e.Code = http.StatusServiceUnavailable
		case reason == ReasonCooldown:
			e.Type, e.Code = ReasonRateLimit, http.StatusTooManyRequests
		}
	}
	switch {
	case soon > 0:
		e.Type, e.Code = ReasonRateLimit, http.StatusTooManyRequests
		e.RetryAfter = max(time.UnixMilli(soon).Sub(now).Round(time.Second), time.Second)
	case len(attempts) > 0 && attempts[len(attempts)-1].Reason == ReasonTimeout && attempts[len(attempts)-1].Recovery <= now.UnixMilli():
		// A transient upstream failure with nothing cooling: a retry may work.
		last := attempts[len(attempts)-1]
		e.Type, e.Code = last.Reason, statusForReason(last.Reason, last.Status)
		upstreamFamily(e, last)
	case len(attempts) > 0:
		last := attempts[len(attempts)-1]
		final(last.Reason, last.Status)
		upstreamFamily(e, last)
	case len(cooling) > 0:
		final(cooling[0].Reason, 0)
	}
	msg := fmt.Sprintf("opensoul: no %s credential could serve %s: %s", provider, model, describeAttempts(model, attempts, cooling, now))
	if earliest > 0 {
		wait := time.UnixMilli(earliest).Sub(now).Round(time.Second)
		msg += fmt.Sprintf(". Earliest recovery in %s (%s)", wait, time.UnixMilli(earliest).UTC().Format(time.RFC3339))
	}
	e.Msg = msg
	return e
}

// upstreamFamily keeps an upstream 5xx or a connection error a 502 (a
// bad gateway, the message naming the upstream's status); only a real
// timeout is a 504.
func upstreamFamily(e *HTTPError, last Attempt) {
	if last.Reason == ReasonTimeout && !timedOut(last) {
		e.Type, e.Code = "upstream_error", http.StatusBadGateway
	}
}

// timedOutHint is the hint of an attempt whose upstream did not answer in
// time (see upstreamErrText); only those become 504.
const timedOutHint = "timed out"

func timedOut(a Attempt) bool { return a.Status == 0 && a.Hint == timedOutHint }

// Bounds on an exhausted message: a long fallback chain over many
// profiles, or an upstream's long error text, would otherwise make a
// message no one reads.
const (
	maxListedAttempts = 12
	maxHintLen        = 200
)

// describeAttempts lists the attempts, then the cooling profiles not
// tried. When a fallback chain tried more than one model, the entries are
// grouped under the model they were tried on ("model m1: a: …; b: ….
// model m2: a: …"), so a profile tried on two models reads as two named
// entries instead of the same line twice. At most maxListedAttempts
// entries are spelled out; the rest are counted.
func describeAttempts(model string, attempts, cooling []Attempt, now time.Time) string {
	type entry struct{ model, text string }
	var entries []entry
	for _, a := range attempts {
		entries = append(entries, entry{cmp.Or(a.Model, model), describeAttempt(a, now)})
	}
	for _, a := range cooling {
		entries = append(entries, entry{cmp.Or(a.Model, model), describeAttempt(a, now) + " (not tried)"})
	}
	more := 0
	if len(entries) > maxListedAttempts {
		more, entries = len(entries)-maxListedAttempts, entries[:maxListedAttempts]
	}
	var models []string // in the order first tried
	byModel := map[string][]string{}
	for _, e := range entries {
		if _, ok := byModel[e.model]; !ok {
			models = append(models, e.model)
		}
		byModel[e.model] = append(byModel[e.model], e.text)
	}
	var out string
	if len(models) == 1 && models[0] == model {
		out = strings.Join(byModel[model], "; ")
	} else {
		groups := make([]string, len(models))
		for i, m := range models {
			groups[i] = "model " + m + ": " + strings.Join(byModel[m], "; ")
		}
		out = strings.Join(groups, ". ")
	}
	if more > 0 {
		out += fmt.Sprintf("; and %d more", more)
	}
	return out
}

func describeAttempt(a Attempt, now time.Time) string {
	s := a.Profile + ": " + a.Reason
	if a.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", a.Status)
	}
	switch {
	case a.Scope != "":
		s += ", kept for " + a.Scope + " requests only"
	case a.Recovery >= DisabledUntilChanged:
		s += ", disabled until the credential is changed or its cooldown cleared"
	case a.Recovery > now.UnixMilli():
		s += fmt.Sprintf(", cooling for %s", time.UnixMilli(a.Recovery).Sub(now).Round(time.Second))
	}
	if a.Hint != "" {
		s += " — " + clipHint(a.Hint)
	}
	return s
}

// clipHint keeps a hint (often an upstream's error text) to maxHintLen
// bytes, cut at a rune boundary.
func clipHint(h string) string {
	if len(h) <= maxHintLen {
		return h
	}
	return strings.ToValidUTF8(h[:maxHintLen], "") + "…"
}

func statusForReason(reason string, upstream int) int {
	switch reason {
	case ReasonRateLimit:
		return http.StatusTooManyRequests
	case ReasonAuth:
		return http.StatusUnauthorized
	case ReasonCredentialScope:
		return http.StatusForbidden
	case ReasonBilling:
		return http.StatusPaymentRequired
	case ReasonTimeout:
		return http.StatusGatewayTimeout
	}
	if upstream >= 400 {
		return upstream
	}
	return http.StatusBadGateway
}
