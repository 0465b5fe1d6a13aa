package gateway_test

import (
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestWrongBaseURL: the AI SDK given …/anthropic posts to
// /anthropic/messages; the gateway answers 404 in the provider's error
// shape naming the base URLs that work, and forwards nothing.
func TestWrongBaseURL(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	h := map[string]string{"x-api-key": gatewayToken, "anthropic-version": "2023-06-01"}
	resp, body := f.do("POST", "/anthropic/messages", `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, h)
	typ, msg := anthropicError(t, body)
	if resp.StatusCode != 404 || typ != "not_found_error" || !strings.Contains(msg, f.srv.URL+"/anthropic/v1,") ||
		!strings.Contains(msg, "/anthropic/messages is not a path of the Anthropic API") {
		t.Errorf("%d %s: %s", resp.StatusCode, typ, msg)
	}
	resp, body = f.do("POST", "/openai/chat/completions", `{"model":"gpt-5","messages":[]}`, map[string]string{"authorization": "Bearer " + gatewayToken})
	if resp.StatusCode != 404 || !strings.Contains(body, `"error"`) || !strings.Contains(body, f.srv.URL+"/openai/v1,") {
		t.Errorf("openai: %d %s", resp.StatusCode, body)
	}
	if n := len(f.anthropic.requests()) + len(f.openai.requests()); n != 0 {
		t.Errorf("%d requests forwarded", n)
	}
	// The right paths still go through.
	if resp, body := f.messages("claude-sonnet-5", nil); resp.StatusCode != 200 {
		t.Errorf("/anthropic/v1/messages: %d %s", resp.StatusCode, body)
	}
}
