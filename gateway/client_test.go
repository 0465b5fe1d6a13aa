package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// capturedHeader reads the headers of a request captured from a real
// client (testdata/clients).
func capturedHeader(t *testing.T, name string) http.Header {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Header http.Header `json:"header"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c.Header
}

// TestIdentifyCapturedClients: the client and version of every captured
// request, and of user agents the captures don't cover.
func TestIdentifyCapturedClients(t *testing.T) {
	t.Parallel()
	for file, want := range map[string][2]string{
		"claude-code-model-status.json": {gateway.ClientClaudeCode, "2.1.332"},
		"codex-model-status.json":       {gateway.ClientCodex, "0.171.0"},
		"ai-sdk-anthropic.json":         {gateway.ClientAISDK, "6.0.326"},
		"ai-sdk-openai-responses.json":  {gateway.ClientAISDK, "6.0.326"},
		"anthropic-sdk.json":            {gateway.ClientAnthropicSDK, "1.15.0"},
		"openai-sdk-chat.json":          {gateway.ClientOpenAISDK, "6.49.0"},
		"langchain-anthropic.json":      {gateway.ClientAnthropicSDK, "0.122.0"}, // LangChain JS sends only its Anthropic SDK's user agent
	} {
		name, version := gateway.IdentifyClient(capturedHeader(t, file))
		if name != want[0] || version != want[1] {
			t.Errorf("%s: %s %s, want %s %s", file, name, version, want[0], want[1])
		}
	}
	for ua, want := range map[string][2]string{
		"curl/8.5.0":                              {gateway.ClientCurl, "8.5.0"},
		"OpenAI/Python 1.99.1":                    {gateway.ClientOpenAISDK, "1.99.1"},
		"Anthropic/Python 0.71.0":                 {gateway.ClientAnthropicSDK, "0.71.0"},
		"codex_cli_rs/0.171.0 (Mac OS 15; arm64)": {gateway.ClientCodex, "0.171.0"},
		"openclaw/2026.9.6":                       {gateway.ClientOpenClaw, "2026.9.6"},
		"langchainjs/1.5.11 Anthropic/JS 0.122.0": {gateway.ClientLangChain, "1.5.11"},
		"Mozilla/5.0 (X11; Linux x86_64)":         {gateway.ClientUnknown, ""},
		"":                                        {gateway.ClientUnknown, ""},
	} {
		name, version := gateway.IdentifyClient(http.Header{"User-Agent": {ua}})
		if name != want[0] || version != want[1] {
			t.Errorf("%q: %s %s, want %s %s", ua, name, version, want[0], want[1])
		}
	}
}

// recorder is the built-in policy, keeping every input it decided on.
type recorder struct {
	gateway.Selector
	mu  sync.Mutex
	ins []*policy.Input
}

func (r *recorder) Decide(ctx context.Context, in *policy.Input) (policy.Decision, error) {
	r.mu.Lock()
	r.ins = append(r.ins, in)
	r.mu.Unlock()
	return r.Selector.Decide(ctx, in)
}

// TestClientFacts: the policy sees the client, and the request log line
// names method, path, status, client, session, profile and attempts.
func TestClientFacts(t *testing.T) {
	t.Parallel()
	var rec *recorder
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		rec = &recorder{Selector: o.Selector}
		o.Selector = rec
	})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	h := map[string]string{}
	for k, v := range capturedHeader(t, "claude-code-model-status.json") {
		h[k] = strings.ReplaceAll(v[0], "GATEWAY-TOKEN", gatewayToken)
	}
	resp, body := f.do("POST", "/anthropic/v1/messages?beta=true", `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, h)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	rec.mu.Lock()
	got := rec.ins[len(rec.ins)-1].Request.Client
	rec.mu.Unlock()
	if got != (policy.ClientFacts{Name: "claude-code", Version: "2.1.332"}) {
		t.Errorf("input.request.client = %+v", got)
	}
	// The log line is written after the answer is sent.
	waitFor(t, "the request log line", func() bool { return strings.Contains(f.logs.String(), `"msg":"request"`) })
	var line map[string]any
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"request"`) {
			json.Unmarshal([]byte(l), &line)
		}
	}
	want := map[string]any{"method": "POST", "path": "/anthropic/v1/messages", "status": 200.0, "client": "claude-code/2.1.332",
		"session": h["X-Claude-Code-Session-Id"], "profile": "anthropic:a", "attempts": 1.0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("request log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
}

// TestHeadProbe: Claude Code's unauthenticated HEAD of the provider root
// gets 200 with no body and no warning; other unauthenticated requests
// still get 401.
func TestHeadProbe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, path := range []string{"/anthropic", "/anthropic/", "/openai"} {
		resp, body := f.do("HEAD", path, "", nil)
		if resp.StatusCode != 200 || body != "" {
			t.Errorf("HEAD %s: %d %q", path, resp.StatusCode, body)
		}
	}
	if strings.Contains(f.logs.String(), `"level":"WARN"`) {
		t.Errorf("the probe logged a warning:\n%s", f.logs.String())
	}
	if resp, _ := f.do("HEAD", "/anthropic/v1/models", "", nil); resp.StatusCode != 401 {
		t.Errorf("HEAD below the root without a token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := f.do("GET", "/anthropic", "", nil); resp.StatusCode != 401 {
		t.Errorf("GET of the root without a token: %d, want 401", resp.StatusCode)
	}
}
