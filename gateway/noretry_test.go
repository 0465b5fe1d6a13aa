package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestDisabledAnswersFinal: with the only profile disabled by an upstream
// 401, the first answer and every later one are the same non-401 status
// with x-should-retry: false, and the official SDK, with its default
// retries, sends the request once and shows the error.
func TestDisabledAnswersFinal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{status: 401, body: invalidKey})
	for i := range 3 {
		resp, body := f.messages("claude-sonnet-5", nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("x-should-retry") != "false" {
			t.Errorf("request %d: %d x-should-retry %q: %s", i, resp.StatusCode, resp.Header.Get("x-should-retry"), body)
		}
	}
	if n := len(f.anthropic.requests()); n != 1 {
		t.Errorf("upstream saw %d requests; the disabled profile must not be retried", n)
	}

	var sent atomic.Int32
	client := anthropic.NewClient(
		aoption.WithBaseURL(f.srv.URL+"/anthropic"), aoption.WithAPIKey(gatewayToken),
		aoption.WithMiddleware(func(r *http.Request, next aoption.MiddlewareNext) (*http.Response, error) {
			sent.Add(1)
			return next(r)
		}),
	) // default retries: 2
	_, err := client.Messages.New(context.Background(), anthropicParams)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("SDK error = %v, want the gateway's 503", err)
	}
	if n := sent.Load(); n != 1 {
		t.Errorf("the SDK sent the request %d times; x-should-retry: false must stop its retries", n)
	}
}

// TestCoolingBeyondBoundIsFinal: a profile rate limited for longer than
// gateway.retryWaitMax answers 429 with x-should-retry: false; within the
// bound it is 429 with Retry-After and no such header.
func TestCoolingBeyondBoundIsFinal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited, header: map[string]string{"retry-after": "600"}})
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 429 || resp.Header.Get("x-should-retry") != "false" || resp.Header.Get("retry-after") != "" {
		t.Errorf("10 min cooldown: %d x-should-retry %q retry-after %q: %s", resp.StatusCode, resp.Header.Get("x-should-retry"), resp.Header.Get("retry-after"), body)
	}
	g := newFixture(t)
	g.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	g.anthropic.set(keyA, answer{status: 429, body: rateLimited, header: map[string]string{"retry-after": "20"}})
	resp, body = g.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 429 || resp.Header.Get("x-should-retry") != "" || resp.Header.Get("retry-after") != "20" {
		t.Errorf("20 s cooldown: %d x-should-retry %q retry-after %q: %s", resp.StatusCode, resp.Header.Get("x-should-retry"), resp.Header.Get("retry-after"), body)
	}
}

// TestFinalAnswerForCodex: Codex ignores x-should-retry and retries
// every final status but 400 (and shows no message for 429), so a final
// answer to Codex is a 400 carrying the same message; the same request
// from another client keeps the reason's status.
func TestFinalAnswerForCodex(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{status: 401, body: invalidKey})
	for i, tc := range []struct {
		ua   string
		want int
	}{
		{"codex_exec/0.171.0 (Debian 13.0.0; x86_64) dumb (codex_exec; 0.171.0)", http.StatusBadRequest},
		{"claude-cli/2.1.332 (external, sdk-cli)", http.StatusServiceUnavailable},
		{"codex_exec/0.171.0", http.StatusBadRequest},
	} {
		resp, body := f.messages("claude-sonnet-5", map[string]string{"User-Agent": tc.ua})
		if resp.StatusCode != tc.want || resp.Header.Get("x-should-retry") != "false" || !strings.Contains(body, "no anthropic credential could serve") {
			t.Errorf("request %d (%s): %d x-should-retry %q: %s", i, tc.ua, resp.StatusCode, resp.Header.Get("x-should-retry"), body)
		}
	}
	// A wrong gateway token is not final: Codex still gets the 401.
	resp, _ := f.do("POST", "/anthropic/v1/messages", `{"model":"m","max_tokens":1,"messages":[]}`,
		map[string]string{"x-api-key": "wrong", "User-Agent": "codex_exec/0.171.0"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token from Codex: %d", resp.StatusCode)
	}
}
