package gateway_test

import (
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway/store"
)

const claudeCodeUA = "claude-cli/2.1.332 (external, sdk-cli)"

// subscriptionAndKey is a gateway whose main agent holds a setup-token that
// Anthropic answers "only authorized for use with Claude Code" and an API
// key that serves.
func subscriptionAndKey(t *testing.T) *fixture {
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{
		"anthropic:sub": {Type: store.TypeToken, Provider: "anthropic", Token: tokenC},
		"anthropic:key": anthropicKey(keyA),
	}, nil)
	f.anthropic.set(tokenC, answer{status: 400, body: claudeCodeOnly})
	f.anthropic.set(keyA, answer{})
	return f
}

// TestClaudeCodeOnlyScopesTheProfile: a setup-token Anthropic answers
// "only authorized for use with Claude Code" for another client is not
// disabled but scoped to Claude Code (kept in auth-state.json): the next
// Claude Code request still uses it, other clients go to the API key
// without the token being sent upstream again, with the scope as reason.
func TestClaudeCodeOnlyScopesTheProfile(t *testing.T) {
	t.Parallel()
	f := subscriptionAndKey(t)
	sdk := map[string]string{"user-agent": "Anthropic/JS 0.122.0"}
	cc := map[string]string{"user-agent": claudeCodeUA}

	resp, body := f.messages("claude-sonnet-5", sdk)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:key" {
		t.Fatalf("SDK request: %d via %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
	}
	u := f.state("main").UsageStats["anthropic:sub"]
	if u == nil || u.Scope != "claude-code" || u.DisabledUntil != 0 {
		t.Fatalf("anthropic:sub stats %+v, want scoped to claude-code and not disabled", u)
	}

	// The token works for Claude Code (the fake upstream now accepts it).
	f.anthropic.set(tokenC, answer{})
	resp, body = f.messages("claude-sonnet-5", cc)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:sub" {
		t.Fatalf("Claude Code request: %d via %q, want the scoped token: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
	}
	if u := f.state("main").UsageStats["anthropic:sub"]; u == nil || u.Scope != "claude-code" {
		t.Errorf("a success from Claude Code lifted the scope: %+v", u)
	}

	// Other clients never send the token upstream again.
	before := len(f.anthropic.requests())
	for _, ua := range []string{"curl/8.5.0", "codex_exec/0.171.0", "ai/6.0.326 ai-sdk/provider-utils/4.0.65"} {
		resp, body = f.messages("claude-sonnet-5", map[string]string{"user-agent": ua})
		if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:key" {
			t.Errorf("%s: %d via %q: %s", ua, resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
		}
	}
	for _, s := range f.anthropic.secrets()[before:] {
		if s == tokenC {
			t.Error("the scoped token was sent for a client that is not Claude Code")
		}
	}

	// Without another credential, other clients get a final answer that
	// names the scope.
	if err := f.st.UpdateProfiles("main", func(p *store.Profiles) error {
		delete(p.Profiles, "anthropic:key")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key to be gone", func() bool {
		resp, body = f.messages("claude-sonnet-5", sdk)
		return resp.StatusCode != 200
	})
	if resp.Header.Get("x-should-retry") != "false" || !strings.Contains(body, "accepts this credential from claude-code only") {
		t.Errorf("SDK request with only the scoped token: %d x-should-retry=%q: %s", resp.StatusCode, resp.Header.Get("x-should-retry"), body)
	}
	if resp, body := f.messages("claude-sonnet-5", cc); resp.StatusCode != 200 {
		t.Errorf("Claude Code request with only the scoped token: %d %s", resp.StatusCode, body)
	}
}

// TestClaudeCodeRefusedIsDisabled: when Claude Code's own request gets the
// "only Claude Code" answer, a scope cannot help: the token is disabled
// until it is changed, as before.
func TestClaudeCodeRefusedIsDisabled(t *testing.T) {
	t.Parallel()
	f := subscriptionAndKey(t)
	resp, body := f.messages("claude-sonnet-5", map[string]string{"user-agent": claudeCodeUA})
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:key" {
		t.Fatalf("%d via %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
	}
	if u := f.state("main").UsageStats["anthropic:sub"]; u == nil || u.Scope != "" || u.DisabledReason != "credential_scope" {
		t.Errorf("anthropic:sub stats %+v, want disabled (credential_scope) without a scope", u)
	}
}
