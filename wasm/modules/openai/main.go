// Command openai is OpenSoul's built-in provider module for OpenAI, built
// for GOOS=wasip1 GOARCH=wasm as a reactor (see wasm/ABI.md).
//
// API keys (sk-…, sk-proj-…, sk-svcacct-…) and OAuth access tokens (JWTs,
// whose exp claim becomes the expiry) both go in Authorization: Bearer.
package main

import (
	"strconv"
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

// Legacy keys are sk- and 48 characters; project keys are much longer.
const minKeyLen = 40

func main() {}

func init() {
	guest.Register(&guest.Provider{
		Name:     "openai",
		Version:  "1.0.0",
		Check:    check,
		Headers:  guest.Bearer,
		Classify: classify,
	})
}

func check(r guest.Request) guest.Check {
	s := r.Secret
	if s == "" {
		return guest.Check{Kind: "unknown", Reason: "the secret is empty"}
	}
	if c, ok := guest.Mismatch(s, "OpenAI"); ok {
		return c
	}
	if exp, hasExp, ok := guest.JWTExpiry(s); ok {
		c := guest.Check{Kind: "oauth_access", ExpiresAt: r.ExpiresAt}
		if hasExp {
			c.ExpiresAt = &exp
		}
		if guest.Expired(c.ExpiresAt, r.Now) {
			c.Reason, c.Hint = "the access token has expired", "sign in again to get a new token"
			return c
		}
		c.Valid = true
		return c
	}
	if !strings.HasPrefix(s, "sk-") {
		return guest.Check{Kind: "unknown",
			Reason: "not an OpenAI API key (sk-… or sk-proj-…) or access token (JWT)",
			Hint:   "create a key at platform.openai.com/api-keys"}
	}
	if why := guest.BadShape(s); why != "" {
		return guest.Check{Kind: "api_key", Reason: "the key " + why}
	}
	if strings.HasPrefix(s, "sk-admin-") {
		return guest.Check{Kind: "api_key", Reason: "this is an admin key, which cannot call models", Hint: "use a project key (sk-proj-…)"}
	}
	if len(s) < minKeyLen {
		return guest.Check{Kind: "api_key", Reason: "too short for an OpenAI API key (" + strconv.Itoa(len(s)) + " characters); was it cut off?"}
	}
	return guest.Check{Valid: true, Kind: "api_key", ExpiresAt: r.ExpiresAt}
}

func classify(r guest.Request) guest.Class {
	c := guest.StatusTable(&r)
	switch {
	case r.Mentions("insufficient_quota", "exceeded your current quota", "billing_hard_limit"):
		return guest.Class{Failover: true, Reason: "billing", RetryAfterMs: -1,
			Hint: "the account is out of quota; add credits at platform.openai.com or use another credential"}
	case r.Status == 404 && r.Mentions("model_not_found", "does not exist"):
		c.Reason, c.Failover = "model_not_found", false
	case r.Status == 401:
		c.Hint = "the key was rejected (invalid_api_key); check it with `opensoul models status`"
	}
	return c
}
