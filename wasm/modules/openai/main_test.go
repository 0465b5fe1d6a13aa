package main

import (
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
