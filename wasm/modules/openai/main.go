// Command openai is OpenSoul's built-in provider module for OpenAI, built
// for GOOS=wasip1 GOARCH=wasm as a reactor (see wasm/ABI.md).
//
// API keys (sk-…, sk-proj-…, sk-svcacct-…) and OAuth access tokens (JWTs,
// whose exp claim becomes the expiry) both go in Authorization: Bearer.
//
// The module declares OpenAI's Codex sign-in (ChatGPT plans) as the
// provider's OAuth client (codexSignIn), and sends a login made with it to
// the ChatGPT backend with its account id (headers).
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
		Version:  "1.2.0",
		OAuth:    codexSignIn,
		Check:    check,
		Headers:  headers,
		Classify: classify,
		Observe:  observe,
		// retry-after as well, for a 429's reset.
		ObserveHeaders: []string{"x-ratelimit-", "x-codex-", "retry-after"},
	})
}

// codexSignIn is the OAuth client of OpenAI's Codex CLI sign-in, which
// ChatGPT plans (Plus, Pro, Business…) use. These are the public values of
// the Codex CLI's own login (github.com/openai/codex, codex-rs/login): its
// public client id (no secret: PKCE), auth.openai.com's authorize and token
// endpoints, the loopback redirect http://localhost:1455/auth/callback the
// client is registered with, the scopes and the extra authorize parameters
// the CLI sends. The ChatGPT account id is the
// "https://api.openai.com/auth".chatgpt_account_id claim of the id_token.
// OpenAI's Codex docs state that ChatGPT sign-in may be used by other
// tools. Checked against the Codex CLI's auth.json schema and several
// independent clients (December 2026); if OpenAI changes them, override
// them under providers.openai.oauth in opensoul.yaml. Codex's device sign-in
// is not the standard RFC 8628 grant, so no deviceUrl is declared.
var codexSignIn = &guest.OAuth{
	AuthURL:        "https://auth.openai.com/oauth/authorize",
	TokenURL:       "https://auth.openai.com/oauth/token",
	ClientID:       "app_EMoamEEZ73f0CkXaXp7hrann",
	Scopes:         []string{"openid", "profile", "email", "offline_access"},
	RedirectPort:   1455,
	RedirectPath:   "/auth/callback",
	Params:         map[string]string{"id_token_add_organizations": "true", "codex_cli_simplified_flow": "true"},
	AccountIDClaim: []string{"https://api.openai.com/auth", "chatgpt_account_id"},
	EmailClaim:     []string{"email"},
	Source:         "OpenAI Codex CLI sign-in (github.com/openai/codex codex-rs/login; public client)",
}

// chatGPTBackend serves ChatGPT-plan logins: the Responses API under
// /responses, without the /v1 prefix of api.openai.com.
const chatGPTBackend = "https://chatgpt.com/backend-api/codex"

// headers presents every credential as a Bearer token. A login made with
// the Codex sign-in (stored as type oauth) is a ChatGPT-plan login: its
// requests go to the ChatGPT backend, with the chatgpt-account-id header
// when the login has an account id. API keys stay on api.openai.com.
func headers(r guest.Request) guest.Headers {
	h := guest.Bearer(r)
	if r.Type != "oauth" {
		return h
	}
	h.BaseURL, h.StripPrefix = chatGPTBackend, "/v1"
	if r.AccountID != "" {
		h.Set["chatgpt-account-id"] = r.AccountID
	}
	return h
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
