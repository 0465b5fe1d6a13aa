// Command openrouter is OpenSoul's built-in provider module for OpenRouter,
// built for GOOS=wasip1 GOARCH=wasm as a reactor (see wasm/ABI.md).
//
// Keys are sk-or-… (sk-or-v1- and 64 hex digits) and go in
// Authorization: Bearer. OpenRouter answers 402 when credits run out and
// 403 when a key's own credit limit is reached; both are billing.
package main

import (
	"strconv"
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

const minKeyLen = 40

func main() {}

func init() {
	guest.Register(&guest.Provider{
		Name:     "openrouter",
		Version:  "1.1.0",
		Check:    check,
		Headers:  guest.Bearer,
		Classify: classify,
		Observe:  observe,
		// retry-after as well, for a 429's reset.
		ObserveHeaders: []string{"x-ratelimit-", "retry-after"},
	})
}

func check(r guest.Request) guest.Check {
	s := r.Secret
	if s == "" {
		return guest.Check{Kind: "unknown", Reason: "the secret is empty"}
	}
	if c, ok := guest.Mismatch(s, "OpenRouter"); ok {
		return c
	}
	if !strings.HasPrefix(s, "sk-or-") {
		return guest.Check{Kind: "unknown", Reason: "not an OpenRouter key (sk-or-…)",
			Hint: "create a key at openrouter.ai/settings/keys"}
	}
	if why := guest.BadShape(s); why != "" {
		return guest.Check{Kind: "api_key", Reason: "the key " + why}
	}
	if len(s) < minKeyLen {
		return guest.Check{Kind: "api_key", Reason: "too short for an OpenRouter key (" + strconv.Itoa(len(s)) + " characters, keys have 73); was it cut off?"}
	}
	return guest.Check{Valid: true, Kind: "api_key", ExpiresAt: r.ExpiresAt}
}

func classify(r guest.Request) guest.Class {
	c := guest.StatusTable(&r)
	switch {
	case r.Status == 402:
		c.Hint = "the OpenRouter account is out of credits; top up at openrouter.ai/settings/credits"
	case r.Status == 403 && r.Mentions("key limit", "limit exceeded", "credit limit"):
		return guest.Class{Failover: true, Reason: "billing", RetryAfterMs: -1,
			Hint: "this key reached its credit limit; raise it at openrouter.ai/settings/keys"}
	case r.Status == 403 && r.Mentions("flagged", "moderation"):
		return guest.Class{Reason: "format", RetryAfterMs: -1, Hint: "the input was flagged by moderation"}
	case r.Status == 404:
		c.Reason, c.Failover = "model_not_found", false
	}
	return c
}
