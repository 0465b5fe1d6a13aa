package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

// The module's logic, natively: no input panics, and no verdict or hint
// repeats the secret.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"sk-proj-Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln", "sk-ant-api03-x", "", " ", "\n"} {
		for _, typ := range []string{"api_key", "token", "oauth", ""} {
			f.Add(s, typ, int64(1_800_000_000_000))
		}
	}
	f.Fuzz(func(t *testing.T, secret, typ string, now int64) {
		r := guest.Request{Op: "check", Type: typ, Secret: secret, Now: now}
		c := check(r)
		if len(secret) >= 8 && strings.Contains(c.Reason+c.Hint, secret) {
			t.Fatalf("the verdict repeats the secret: %+v", c)
		}
		if c.Valid && c.Reason != "" {
			t.Fatalf("valid with a reason: %+v", c)
		}
		_ = guest.Bearer(r)
		_ = classify(guest.Request{Status: int(now % 600), Body: secret, Headers: map[string]string{"retry-after": typ}})
	})
}

// A ChatGPT-plan login goes to the ChatGPT backend with its account id; an
// API key stays on the provider's base URL with only its Bearer header.
func TestHeadersSendALoginToTheChatGPTBackend(t *testing.T) {
	key := headers(guest.Request{Type: "api_key", Secret: "sk-proj-x"})
	if key.BaseURL != "" || key.StripPrefix != "" || len(key.Set) != 1 || key.Set["authorization"] != "Bearer sk-proj-x" {
		t.Errorf("api key: %+v", key)
	}
	login := headers(guest.Request{Type: "oauth", Secret: "eyJ.a.b", AccountID: "acct-1"})
	if login.BaseURL != chatGPTBackend || login.StripPrefix != "/v1" || login.Set["chatgpt-account-id"] != "acct-1" || login.Set["authorization"] != "Bearer eyJ.a.b" {
		t.Errorf("login: %+v", login)
	}
	if _, ok := headers(guest.Request{Type: "oauth", Secret: "eyJ.a.b"}).Set["chatgpt-account-id"]; ok {
		t.Error("a login without an account id got an empty chatgpt-account-id header")
	}
}

func TestObserve(t *testing.T) {
	const now = 1_800_000_000_000
	for _, tc := range []struct {
		name    string
		status  int
		headers map[string]string
		want    guest.Observation
	}{
		{"api key", 200, map[string]string{
			"x-ratelimit-limit-requests":     "10000",
			"x-ratelimit-remaining-requests": "9999",
			"x-ratelimit-reset-requests":     "6ms",
			"x-ratelimit-limit-tokens":       "30000000",
			"x-ratelimit-remaining-tokens":   "29999000",
			"x-ratelimit-reset-tokens":       "1m2.5s",
		}, guest.Observation{Status: "allowed", Windows: []guest.Window{
			{Name: "requests", Limit: 10000, Remaining: 9999, ResetAt: now + 6, Utilization: -1},
			{Name: "tokens", Limit: 30000000, Remaining: 29999000, ResetAt: now + 62500, Utilization: -1},
		}, Scope: guest.ScopeModel}},
		{"chatgpt plan", 200, map[string]string{
			"x-codex-primary-used-percent":          "87.5",
			"x-codex-primary-reset-after-seconds":   "600",
			"x-codex-secondary-used-percent":        "12",
			"x-codex-secondary-window-minutes":      "10080",
			"x-codex-secondary-reset-after-seconds": "bad",
		}, guest.Observation{Status: "allowed", Windows: []guest.Window{
			{Name: "primary", Limit: -1, Remaining: -1, ResetAt: now + 600000, Utilization: 0.875},
			{Name: "secondary", Limit: -1, Remaining: -1, ResetAt: -1, Utilization: 0.12},
		}}},
		{"429", 429, map[string]string{"retry-after-ms": "1500", "x-ratelimit-remaining-tokens": "0"},
			guest.Observation{Status: "rejected", ResetAt: now + 1500, Windows: []guest.Window{
				{Name: "tokens", Limit: -1, Remaining: 0, ResetAt: -1, Utilization: -1}}, Scope: guest.ScopeModel}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := observe(guest.Request{Op: "observe", Status: tc.status, Headers: tc.headers, Now: now})
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
