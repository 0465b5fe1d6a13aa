// Command google is OpenSoul's built-in provider module for the Gemini API
// (generativelanguage.googleapis.com), built for GOOS=wasip1 GOARCH=wasm as
// a reactor (see wasm/ABI.md).
//
// API keys (AIza…, 39 characters) go in x-goog-api-key; the native API
// does not take them as a Bearer. Google reports a bad key as 400
// INVALID_ARGUMENT with reason API_KEY_INVALID, which is auth, not format.
package main

import (
	"strconv"
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

const (
	keyPrefix = "AIza"
	keyLen    = 39
)

func main() {}

func init() {
	guest.Register(&guest.Provider{
		Name:     "google",
		Version:  "1.0.0",
		Check:    check,
		Headers:  headers,
		Classify: classify,
	})
}

func check(r guest.Request) guest.Check {
	s := r.Secret
	if s == "" {
		return guest.Check{Kind: "unknown", Reason: "the secret is empty"}
	}
	if c, ok := guest.Mismatch(s, "Google"); ok {
		return c
	}
	if exp, hasExp, ok := guest.JWTExpiry(s); ok || strings.HasPrefix(s, "ya29.") {
		c := guest.Check{Kind: "oauth_access", ExpiresAt: r.ExpiresAt}
		if hasExp {
			c.ExpiresAt = &exp
		}
		if guest.Expired(c.ExpiresAt, r.Now) {
			c.Reason = "the access token has expired"
			return c
		}
		c.Valid = true
		return c
	}
	if !strings.HasPrefix(s, keyPrefix) {
		return guest.Check{Kind: "unknown", Reason: "not a Google API key (AIza…)",
			Hint: "create a key at aistudio.google.com/apikey"}
	}
	if why := guest.BadShape(s); why != "" {
		return guest.Check{Kind: "api_key", Reason: "the key " + why}
	}
	if len(s) != keyLen {
		return guest.Check{Kind: "api_key", Reason: "a Google API key has " + strconv.Itoa(keyLen) + " characters, this has " + strconv.Itoa(len(s))}
	}
	return guest.Check{Valid: true, Kind: "api_key", ExpiresAt: r.ExpiresAt}
}

func headers(r guest.Request) guest.Headers {
	if r.Type == "oauth" || strings.HasPrefix(r.Secret, "ya29.") {
		return guest.Headers{Set: map[string]string{"authorization": "Bearer " + r.Secret}, Remove: []string{"x-goog-api-key", "x-api-key"}}
	}
	return guest.Headers{Set: map[string]string{"x-goog-api-key": r.Secret}, Remove: []string{"authorization", "x-api-key"}}
}

func classify(r guest.Request) guest.Class {
	c := guest.StatusTable(&r)
	switch {
	case r.Mentions("api_key_invalid", "api key not valid", "api key expired"):
		return guest.Class{Failover: true, Reason: "auth", RetryAfterMs: -1, Hint: "Google rejected the API key; check it with `opensoul models status`"}
	case r.Mentions("billing", "free tier is not available"):
		return guest.Class{Failover: true, Reason: "billing", RetryAfterMs: -1, Hint: "enable billing for the key's Google Cloud project"}
	case r.Status == 429 || r.Mentions("resource_exhausted"):
		return guest.Class{Failover: true, Reason: "rate_limit", RetryAfterMs: guest.RetryAfterMs(r.Headers)}
	case r.Status == 404:
		c.Reason, c.Failover = "model_not_found", false
	}
	return c
}
