package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

func (f *fixture) anthropicClient(opts ...aoption.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]aoption.RequestOption{
		aoption.WithBaseURL(f.srv.URL + "/anthropic"),
		aoption.WithAPIKey(gatewayToken),
		aoption.WithMaxRetries(0),
	}, opts...)...)
}

func (f *fixture) openaiClient(opts ...ooption.RequestOption) openai.Client {
	return openai.NewClient(append([]ooption.RequestOption{
		ooption.WithBaseURL(f.srv.URL + "/openai/v1"),
		ooption.WithAPIKey(gatewayToken),
		ooption.WithMaxRetries(0),
	}, opts...)...)
}

var anthropicParams = anthropic.MessageNewParams{
	Model:     "claude-sonnet-5",
	MaxTokens: 64,
	Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
}

var openaiParams = openai.ChatCompletionNewParams{
	Model:    "gpt-5",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
}

func TestSDKAnthropic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{
		"anthropic:default": anthropicKey(keyA),
		"anthropic:sub":     {Type: store.TypeToken, Provider: "anthropic", Token: tokenC},
	}, map[string][]string{"anthropic": {"anthropic:sub", "anthropic:default"}})
	f.anthropic.set(keyA, answer{})
	f.anthropic.set(tokenC, answer{})
	client := f.anthropicClient()
	ctx := context.Background()

	var resp *http.Response
	msg, err := client.Messages.New(ctx, anthropicParams, aoption.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "hello" {
		t.Errorf("content = %+v", msg.Content)
	}
	if got := resp.Header.Get("x-opensoul-profile"); got != "anthropic:sub" {
		t.Errorf("x-opensoul-profile = %q, want anthropic:sub", got)
	}
	if got := resp.Header.Get("x-opensoul-attempts"); got != "1" {
		t.Errorf("x-opensoul-attempts = %q, want 1", got)
	}
	reqs := f.anthropic.requests()
	last := reqs[len(reqs)-1]
	if last.secret != tokenC || last.path != "/v1/messages" {
		t.Errorf("upstream saw secret %q on %s", last.secret, last.path)
	}
	if last.header.Get("x-api-key") != "" || !strings.Contains(last.header.Get("anthropic-beta"), "oauth") {
		t.Errorf("token presented wrongly: x-api-key=%q anthropic-beta=%q", last.header.Get("x-api-key"), last.header.Get("anthropic-beta"))
	}
	for name := range last.header {
		if strings.HasPrefix(strings.ToLower(name), "x-opensoul") {
			t.Errorf("forwarded %s upstream", name)
		}
	}

	stream := client.Messages.NewStreaming(ctx, anthropicParams)
	var acc anthropic.Message
	events := 0
	for stream.Next() {
		events++
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if events != 7 || len(acc.Content) != 1 || acc.Content[0].Text != "hello" {
		t.Errorf("stream: %d events, content %+v", events, acc.Content)
	}
}

func TestSDKOpenAI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{
		"openai:default": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
	}, nil)
	f.openai.set(openaiKey, answer{})
	client := f.openaiClient()
	ctx := context.Background()

	var resp *http.Response
	cc, err := client.Chat.Completions.New(ctx, openaiParams, ooption.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Content != "hello" {
		t.Errorf("content = %q", cc.Choices[0].Message.Content)
	}
	if got := resp.Header.Get("x-opensoul-profile"); got != "openai:default" {
		t.Errorf("x-opensoul-profile = %q", got)
	}
	last := f.openai.requests()[0]
	if last.secret != openaiKey || last.path != "/v1/chat/completions" {
		t.Errorf("upstream saw %q on %s", last.secret, last.path)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, openaiParams)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != "hello" {
		t.Errorf("streamed content = %q", acc.Choices[0].Message.Content)
	}
}

// TestSDKFailover: a 429 moves the request to the next profile, invisibly
// to the SDK, and the cooling profile is not tried again.
func TestSDKFailover(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{
		"openai:a": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
		"openai:b": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey2},
	}, map[string][]string{"openai": {"openai:a", "openai:b"}})
	f.openai.set(openaiKey, answer{status: 429, body: `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`, header: map[string]string{"retry-after": "20"}})
	f.openai.set(openaiKey2, answer{})
	client := f.openaiClient()
	for i := range 3 {
		var resp *http.Response
		stream := client.Chat.Completions.NewStreaming(context.Background(), openaiParams, ooption.WithResponseInto(&resp))
		for stream.Next() {
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := resp.Header.Get("x-opensoul-profile"); got != "openai:b" {
			t.Errorf("request %d served by %q", i, got)
		}
	}
	if got := strings.Join(f.openai.secrets(), ","); got != openaiKey+","+openaiKey2+","+openaiKey2+","+openaiKey2 {
		t.Errorf("upstream saw %d requests; the cooling key more than once? %v", len(f.openai.requests()), got != "")
	}

	// The SDK stops reading at "data: [DONE]", so the last request's handler
	// may still be finishing (and counting) when the loop above ends.
	wants := []string{
		`opensoul_failovers_total{provider="openai"} 1`,
		`opensoul_profile_failures_total{profile="openai:a",provider="openai",reason="rate_limit"} 1`,
		`opensoul_profile_cooldown_seconds{agent="main",model="gpt-5",profile="openai:a"} 20`,
		`opensoul_upstream_attempts_total{outcome="ok",provider="openai"} 3`,
		`opensoul_requests_total{code="200",provider="openai"} 3`,
	}
	waitFor(t, "the three requests in /metrics", func() bool {
		resp, metrics := f.do("GET", "/metrics", "", nil)
		return resp.StatusCode == 200 && strings.Contains(metrics, wants[len(wants)-1])
	})
	resp, metrics := f.do("GET", "/metrics", "", nil)
	for _, want := range wants {
		if resp.StatusCode != 200 || !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// All cooling: the SDK sees a 429 in OpenAI's shape.
	f.openai.set(openaiKey2, answer{status: 429, body: `{"error":{"message":"slow down"}}`})
	_, err := client.Chat.Completions.New(context.Background(), openaiParams)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Fatalf("err = %v, want a 429 openai.Error", err)
	}
	if apiErr.Response.Header.Get("Retry-After") == "" || !strings.Contains(apiErr.Message, "openai:a") || !strings.Contains(apiErr.Message, "openai:b") {
		t.Errorf("error lacks Retry-After or attempts: %q %q", apiErr.Response.Header.Get("Retry-After"), apiErr.Message)
	}
}

// TestStreamFlushesEachEvent: the upstream sends one event and waits until
// the client has it before sending the next, so a gateway that buffered
// would deadlock (the test would give up after its bound). Both an SSE
// stream and a chunked answer of unknown length (NDJSON) go out as they
// arrive; only answers of known length wait for their end.
func TestStreamFlushesEachEvent(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			streamFlushes(t, ct)
		})
	}
}

func streamFlushes(t *testing.T, contentType string) {
	got := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		io.WriteString(w, "event: ping\ndata: {\"type\":\"ping\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			return // the client never saw the first event
		}
		io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	}))
	defer up.Close()
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.Providers["anthropic"] = gateway.Upstream{BaseURL: up.URL}
	}))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	req, _ := http.NewRequest("POST", f.srv.URL+"/anthropic/v1/messages", strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("x-api-key", gatewayToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "event: ping\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	close(got)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "message_stop") {
		t.Errorf("the second event never came: %q", rest)
	}
}
