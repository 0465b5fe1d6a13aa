package gateway_test

import (
	"context"
	"errors"
	"net/http"
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
