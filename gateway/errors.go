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
	Err        error
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
	var body any
	if providers.For(provider).Errors == providers.ErrorsAnthropic {
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

// exhausted builds the answer for a request none of whose candidates
// could serve: every attempt's profile and reason, the profiles skipped
// because they are cooling, and the earliest recovery. When waiting helps
// (a rate limit or a cooldown ends at a known time) the answer is 429 with
// Retry-After, so SDKs back off and retry; otherwise its status follows
// the last failure (401 for a rejected credential, 402 for billing, …).
func exhausted(provider, model string, attempts []Attempt, cooling []Attempt, now time.Time) *HTTPError {
	var parts []string
	for _, a := range attempts {
		parts = append(parts, describeAttempt(a, now))
	}
	for _, a := range cooling {
		parts = append(parts, describeAttempt(a, now)+" (not tried)")
	}
	earliest, soon := int64(0), int64(0) // any recovery; a recovery waiting fixes
	for _, a := range slices.Concat(attempts, cooling) {
		if a.Recovery <= now.UnixMilli() || a.Recovery >= DisabledUntilChanged {
			continue
		}
		if earliest == 0 || a.Recovery < earliest {
			earliest = a.Recovery
		}
		waitable := a.Reason == ReasonRateLimit || a.Reason == ReasonTimeout || a.Reason == ReasonCooldown
		if waitable && (soon == 0 || a.Recovery < soon) {
			soon = a.Recovery
		}
	}
	e := &HTTPError{Code: http.StatusBadGateway, Type: ReasonTimeout}
	switch {
	case soon > 0 || (len(attempts) == 0 && len(cooling) > 0 && earliest > 0):
		e.Type, e.Code = ReasonRateLimit, http.StatusTooManyRequests
		e.RetryAfter = max(time.UnixMilli(cmp.Or(soon, earliest)).Sub(now).Round(time.Second), time.Second)
	case len(attempts) > 0:
		last := attempts[len(attempts)-1]
		e.Type, e.Code = last.Reason, statusForReason(last.Reason, last.Status)
	case len(cooling) > 0:
		e.Type, e.Code = cooling[0].Reason, statusForReason(cooling[0].Reason, 0)
	}
	msg := fmt.Sprintf("opensoul: no %s credential could serve %s: %s", provider, model, strings.Join(parts, "; "))
	if earliest > 0 {
		wait := time.UnixMilli(earliest).Sub(now).Round(time.Second)
		msg += fmt.Sprintf(". Earliest recovery in %s (%s)", wait, time.UnixMilli(earliest).UTC().Format(time.RFC3339))
	}
	e.Msg = msg
	return e
}

func describeAttempt(a Attempt, now time.Time) string {
	s := a.Profile + ": " + a.Reason
	if a.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", a.Status)
	}
	switch {
	case a.Recovery >= DisabledUntilChanged:
		s += ", disabled until the credential is changed or its cooldown cleared"
	case a.Recovery > now.UnixMilli():
		s += fmt.Sprintf(", cooling for %s", time.UnixMilli(a.Recovery).Sub(now).Round(time.Second))
	}
	if a.Hint != "" {
		s += " — " + a.Hint
	}
	return s
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
