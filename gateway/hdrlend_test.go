package gateway_test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
	"github.com/opensoul/opensoul/gateway/store"
)

// A failover attempt sends exactly what the same request served by that
// credential alone sends: the caller's headers and body with only its own
// credential's headers, whatever the attempts before it changed (the
// first attempt edits the outgoing headers in place; see hdrlend.go).
func TestFailoverAttemptSendsTheCallersHeaders(t *testing.T) {
	token := store.Credential{Type: store.TypeToken, Provider: "anthropic", Token: tokenC}
	cases := []struct {
		name  string
		order []string // all but the last answer 429
	}{
		{"token then key", []string{"anthropic:tok", "anthropic:b"}},
		{"key then token", []string{"anthropic:a", "anthropic:tok"}},
		{"token, key, then key", []string{"anthropic:tok", "anthropic:a", "anthropic:b"}},
		{"key, token, then key", []string{"anthropic:a", "anthropic:tok", "anthropic:b"}},
	}
	secretOf := map[string]string{"anthropic:a": keyA, "anthropic:b": keyB, "anthropic:tok": tokenC}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.profiles("main", map[string]store.Credential{
				"anthropic:a": anthropicKey(keyA), "anthropic:b": anthropicKey(keyB), "anthropic:tok": token,
			}, map[string][]string{"anthropic": tc.order})
			last := tc.order[len(tc.order)-1]
			for _, id := range tc.order[:len(tc.order)-1] {
				f.anthropic.set(secretOf[id], answer{status: 429, body: rateLimited})
			}
			f.anthropic.set(secretOf[last], answer{})
			caller := map[string]string{"anthropic-beta": "caller-beta-1", "X-Caller": "kept", "Authorization": "Bearer not-forwarded", "X-OpenSoul-Note": "own"}
			resp, body := f.messages("claude-sonnet-5", caller)
			if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != last {
				t.Fatalf("failover: status %d profile %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
			}
			// The same request with the last credential alone (the others
			// are cooling now anyway).
			f.profiles("main", nil, map[string][]string{"anthropic": {last}})
			resp, body = f.messages("claude-sonnet-5", caller)
			if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-attempts") != "1" {
				t.Fatalf("alone: status %d attempts %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-attempts"), body)
			}
			got := f.anthropic.requests()
			n := len(tc.order)
			if len(got) != n+1 {
				t.Fatalf("upstream saw %d requests, want %d", len(got), n+1)
			}
			for i, id := range tc.order {
				if got[i].secret != secretOf[id] {
					t.Fatalf("attempt %d presented %q, want %s's secret", i+1, got[i].secret, id)
				}
				if !strings.Contains(got[i].body, `"messages"`) || got[i].body != got[n].body {
					t.Errorf("attempt %d sent body %q, alone %q", i+1, got[i].body, got[n].body)
				}
				if got[i].header.Get("X-Caller") != "kept" || got[i].header.Get("Authorization") == "Bearer not-forwarded" {
					t.Errorf("attempt %d: caller headers not as sent: %v", i+1, got[i].header)
				}
				for name := range got[i].header {
					if strings.HasPrefix(strings.ToLower(name), "x-opensoul-") {
						t.Errorf("attempt %d forwarded OpenSoul's own header %s", i+1, name)
					}
				}
			}
			failover, alone := got[n-1].header, got[n].header
			if !maps.EqualFunc(failover, alone, slices.Equal) {
				t.Errorf("attempt %d of a failover sent headers\n%v\nthe same credential alone sent\n%v", n, failover, alone)
			}
			for i, id := range tc.order {
				h := got[i].header
				isToken := id == "anthropic:tok"
				if (h.Get("X-Api-Key") != "") == isToken || (h.Get("Authorization") != "") != isToken {
					t.Errorf("attempt %d (%s): x-api-key %q, authorization %q", i+1, id, h.Get("X-Api-Key"), h.Get("Authorization"))
				}
				if beta := h.Values("Anthropic-Beta"); !isToken && !slices.Equal(beta, []string{"caller-beta-1"}) {
					t.Errorf("attempt %d (%s): anthropic-beta %q, want the caller's alone", i+1, id, beta)
				}
			}
		})
	}
}

// A login's client headers (providers.openai.oauth.headers) go on its own
// attempt only: when the login fails over to an API key, the key's attempt
// sends what the key alone sends.
func TestFailoverAfterLoginDropsItsHeaders(t *testing.T) {
	as := oauthtest.New(t)
	up := newOAuthUpstream(t, as)
	client := as.Client
	client.BaseURL = up.URL + "/backend-api/codex"
	client.StripPrefix = "/v1"
	client.Headers = map[string]string{"chatgpt-account-id": "{accountId}", "X-Caller": "login-value"}
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.OAuth = map[string]oauth.Client{"openai": client}
	}))
	tok := as.Login(t)
	// The login is dead for good: access and refresh token revoked.
	if err := as.RevokeAccess(tok.Access); err != nil {
		t.Fatal(err)
	}
	as.Revoke(tok.Refresh)
	f.profiles("main", map[string]store.Credential{
		"openai:me":  loginCred(tok, f.clock.Now().Add(time.Hour)),
		"openai:key": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
	}, map[string][]string{"openai": {"openai:me", "openai:key"}})
	f.openai.set(openaiKey, answer{})
	send := func() (*http.Response, string) {
		return f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"Authorization": "Bearer " + gatewayToken, "X-Caller": "kept"})
	}
	resp, body := send()
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "openai:key" || resp.Header.Get("x-opensoul-attempts") != "2" {
		t.Fatalf("failover: status %d profile %q attempts %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), resp.Header.Get("x-opensoul-attempts"), body)
	}
	up.mu.Lock()
	login := up.hdr
	up.mu.Unlock()
	if len(login) != 1 || login[0].Get("chatgpt-account-id") != tok.AccountID || tok.AccountID == "" || login[0].Get("X-Caller") != "login-value" {
		t.Fatalf("the login's attempt: %d requests, headers %v", len(login), login)
	}
	f.profiles("main", nil, map[string][]string{"openai": {"openai:key"}})
	if resp, body := send(); resp.StatusCode != 200 || resp.Header.Get("x-opensoul-attempts") != "1" {
		t.Fatalf("alone: status %d attempts %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-attempts"), body)
	}
	got := f.openai.requests()
	if len(got) != 2 {
		t.Fatalf("the key's upstream saw %d requests, want 2", len(got))
	}
	if got[0].header.Get("chatgpt-account-id") != "" || got[0].header.Get("X-Caller") != "kept" {
		t.Errorf("the key's attempt after the login carried the login's headers: %v", got[0].header)
	}
	if !maps.EqualFunc(got[0].header, got[1].header, slices.Equal) || got[0].body != got[1].body {
		t.Errorf("after the login the key sent\n%v %s\nalone it sent\n%v %s", got[0].header, got[0].body, got[1].header, got[1].body)
	}
}
