// Command anthropic is OpenSoul's built-in provider module for Anthropic,
// built for GOOS=wasip1 GOARCH=wasm as a reactor (see wasm/ABI.md).
//
// API keys (sk-ant-api…) go in x-api-key. Setup tokens from
// `claude setup-token` and OAuth access tokens (sk-ant-oat…) go in
// Authorization: Bearer with the oauth beta flag, and x-api-key is removed.
package main

import (
	"strconv"
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

const (
	apiKeyPrefix = "sk-ant-api"
	tokenPrefix  = "sk-ant-oat"
	refreshPfx   = "sk-ant-ort"
	oauthBeta    = "oauth-2025-04-20"

	// A full setup token is 108 characters (sk-ant-oat01- and 95 more).
	// Terminals that wrap it leave about 80 on the first line, so anything
	// under minTokenLen is reported as truncated.
	fullTokenLen = 108
	minTokenLen  = 90
	// API keys are sk-ant-api03- and 95 more characters, 108 in all; only
	// an obviously cut key is refused, in case the format grows shorter.
	minKeyLen = 40
)

func main() {}

func init() {
	guest.Register(&guest.Provider{
		Name:     "anthropic",
		Version:  "1.1.0",
		Check:    check,
		Headers:  headers,
		Classify: classify,
		Observe:  observe,
		// retry-after as well, for a 429's reset.
		ObserveHeaders: []string{ratelimitPrefix, "retry-after"},
	})
}

func check(r guest.Request) guest.Check {
	s := r.Secret
	if s == "" {
		return guest.Check{Kind: "unknown", Reason: "the secret is empty"}
	}
	if c, ok := guest.Mismatch(s, "Anthropic"); ok {
		return c
	}
	if why := guest.BadShape(s); why != "" {
		return guest.Check{Kind: kindOf(r), Reason: "the secret " + why}
	}
	switch {
	case strings.HasPrefix(s, apiKeyPrefix):
		if len(s) < minKeyLen {
			return guest.Check{Kind: "api_key", Reason: "too short for an Anthropic API key (" + strconv.Itoa(len(s)) + " characters, keys have 108); was it cut off?"}
		}
		return guest.Check{Valid: true, Kind: "api_key", ExpiresAt: r.ExpiresAt}
	case strings.HasPrefix(s, tokenPrefix):
		kind := "setup_token"
		if r.Type == "oauth" {
			kind = "oauth_access"
		}
		if len(s) < minTokenLen {
			return guest.Check{Kind: kind,
				Reason: "too short for an Anthropic token (" + strconv.Itoa(len(s)) + " characters, setup tokens have " + strconv.Itoa(fullTokenLen) + "); it was probably cut at a line wrap",
				Hint:   "copy the whole token printed by `claude setup-token` and paste it again"}
		}
		if guest.Expired(r.ExpiresAt, r.Now) {
			return guest.Check{Kind: kind, ExpiresAt: r.ExpiresAt, Reason: "the token has expired",
				Hint: "run `claude setup-token` again and paste the new token"}
		}
		return guest.Check{Valid: true, Kind: kind, ExpiresAt: r.ExpiresAt}
	case strings.HasPrefix(s, refreshPfx):
		return guest.Check{Kind: "unknown", Reason: "this is an OAuth refresh token, not an access token or API key"}
	}
	return guest.Check{Kind: "unknown",
		Reason: "not an Anthropic API key (sk-ant-api…) or setup token (sk-ant-oat…)",
		Hint:   "create an API key at console.anthropic.com or run `claude setup-token`"}
}

func kindOf(r guest.Request) string {
	switch {
	case strings.HasPrefix(r.Secret, apiKeyPrefix):
		return "api_key"
	case strings.HasPrefix(r.Secret, tokenPrefix) && r.Type == "oauth":
		return "oauth_access"
	case strings.HasPrefix(r.Secret, tokenPrefix):
		return "setup_token"
	}
	return "unknown"
}

func headers(r guest.Request) guest.Headers {
	bearer := strings.HasPrefix(r.Secret, tokenPrefix) ||
		(r.Type == "token" || r.Type == "oauth") && !strings.HasPrefix(r.Secret, apiKeyPrefix)
	if bearer {
		return guest.Headers{
			Set:    map[string]string{"authorization": "Bearer " + r.Secret, "anthropic-beta": oauthBeta},
			Remove: []string{"x-api-key"},
		}
	}
	return guest.Headers{Set: map[string]string{"x-api-key": r.Secret}, Remove: []string{"authorization"}}
}

func classify(r guest.Request) guest.Class {
	c := guest.StatusTable(&r)
	switch {
	case r.Mentions("only authorized for use with claude code"):
		// A subscription token Anthropic accepts from Claude Code only:
		// the gateway keeps it for Claude Code's requests (scope) and
		// serves other clients with another credential.
		return guest.Class{Failover: true, Reason: "credential_scope", RetryAfterMs: -1, Scope: "claude-code",
			Hint: "this token only works inside Claude Code; it is kept for Claude Code requests, and other clients need an Anthropic API key"}
	case r.Mentions("credit balance"):
		return guest.Class{Failover: true, Reason: "billing", RetryAfterMs: -1,
			Hint: "add credits at console.anthropic.com, or use another credential"}
	case r.Status == 529 || r.Mentions("overloaded_error"):
		return guest.Class{Failover: true, Reason: "rate_limit", RetryAfterMs: guest.RetryAfterMs(r.Headers),
			Hint: "Anthropic is overloaded"}
	case r.Status == 401 || r.Status == 403:
		c.Hint = "the credential was rejected; check it with `opensoul models status`"
	case r.Status == 404 && r.Mentions("model"):
		c.Reason, c.Failover = "model_not_found", false
	}
	return c
}
