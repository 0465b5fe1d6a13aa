package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
)

// usageSink keeps every record the gateway hands over.
type usageSink struct {
	mu     sync.Mutex
	recs   []usage.Record
	limits []usage.Limits
}

func (s *usageSink) Limits(l usage.Limits) {
	s.mu.Lock()
	s.limits = append(s.limits, l)
	s.mu.Unlock()
}

func (s *usageSink) observed() []usage.Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]usage.Limits(nil), s.limits...)
}

func (s *usageSink) Record(r usage.Record) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *usageSink) records() []usage.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]usage.Record(nil), s.recs...)
}

// countingUpstream speaks Anthropic Messages, OpenAI Chat Completions and
// Responses, JSON and SSE, with different token counts on every answer,
// and adds up what it reported (what it wrote before a client went away,
// for a stream that was cut).
type countingUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	n        int64
	reported usage.Usage
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	u := &countingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// next is this answer's usage, counted as reported once it is sent.
func (u *countingUpstream) next() usage.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n++
	return usage.Usage{Input: 100*u.n + 7, Output: 10*u.n + 3, CacheRead: 1000 * u.n, CacheWrite: u.n % 3 * 50, Seen: true}
}

func (u *countingUpstream) report(x usage.Usage) {
	u.mu.Lock()
	u.reported.Add(x)
	u.mu.Unlock()
}

func (u *countingUpstream) total() usage.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reported
}

func (u *countingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	x := u.next()
	cut := r.Header.Get("X-Test-Cut") != ""
	switch {
	case strings.HasSuffix(r.URL.Path, "/messages") && req.Stream:
		u.anthropicSSE(w, r, req.Model, x, cut)
	case strings.HasSuffix(r.URL.Path, "/messages"):
		w.Header().Set("Anthropic-Ratelimit-Requests-Limit", "1000")
		w.Header().Set("Anthropic-Ratelimit-Requests-Remaining", fmt.Sprint(1000-x.Input/100))
		w.Header().Set("Anthropic-Ratelimit-Requests-Reset", "2026-11-25T12:01:00Z")
		writeJSON(w, 200, fmt.Sprintf(`{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"the \"usage\": {\"input_tokens\": 1} is text"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
			req.Model, x.Input, x.CacheWrite, x.CacheRead, x.Output), nil)
		u.report(x)
	case strings.HasSuffix(r.URL.Path, "/chat/completions") && req.Stream:
		x.CacheWrite = 0 // OpenAI does not report cache writes
		u.chatSSE(w, req.Model, x)
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		x.CacheWrite = 0
		writeJSON(w, 200, fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}}`,
			req.Model, x.Input+x.CacheRead, x.Output, x.Input+x.CacheRead+x.Output, x.CacheRead), nil)
		u.report(x)
	case strings.HasSuffix(r.URL.Path, "/responses"):
		x.CacheWrite = 0
		u.responsesSSE(w, req.Model, x)
	default:
		http.NotFound(w, r)
	}
}

func (u *countingUpstream) anthropicSSE(w http.ResponseWriter, r *http.Request, model string, x usage.Usage, cut bool) {
	start := fmt.Sprintf(`event: message_start`+"\n"+`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":1}}}`,
		model, x.Input, x.CacheWrite, x.CacheRead)
	delta := `event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hel"}}`
	if cut {
		sse(w, start, delta)
		sent := x
		sent.Output = 1
		u.report(sent)
		<-r.Context().Done() // the client goes away mid-stream
		return
	}
	sse(w, start,
		`event: content_block_start`+"\n"+`data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		delta,
		`event: content_block_stop`+"\n"+`data: {"type":"content_block_stop","index":0}`,
		fmt.Sprintf(`event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, x.Output),
		`event: message_stop`+"\n"+`data: {"type":"message_stop"}`)
	u.report(x)
}

func (u *countingUpstream) chatSSE(w http.ResponseWriter, model string, x usage.Usage) {
	chunk := func(choices, usage string) string {
		return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"` + model + `","choices":` + choices + `,"usage":` + usage + `}`
	}
	sse(w,
		chunk(`[{"index":0,"delta":{"role":"assistant","content":"hel"},"finish_reason":null}]`, "null"),
		chunk(`[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]`, "null"),
		chunk(`[]`, fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}`,
			x.Input+x.CacheRead, x.Output, x.Input+x.CacheRead+x.Output, x.CacheRead)),
		`data: [DONE]`)
	u.report(x)
}

func (u *countingUpstream) responsesSSE(w http.ResponseWriter, model string, x usage.Usage) {
	resp := func(status, output, usage string) string {
		return fmt.Sprintf(`{"id":"resp_1","object":"response","created_at":1,"status":%q,"model":%q,"output":%s,"usage":%s}`, status, model, output, usage)
	}
	msg := `[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hello","annotations":[]}]}]`
	sse(w,
		`event: response.created`+"\n"+`data: {"type":"response.created","sequence_number":0,"response":`+resp("in_progress", "[]", "null")+`}`,
		`event: response.output_text.delta`+"\n"+`data: {"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"hello"}`,
		`event: response.completed`+"\n"+`data: {"type":"response.completed","sequence_number":2,"response":`+resp("completed", msg,
			fmt.Sprintf(`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}`,
				x.Input+x.CacheRead, x.CacheRead, x.Output, x.Input+x.CacheRead+x.Output))+`}`)
	u.report(x)
}

// TestUsageTotals drives the gateway with the official SDKs over every
// wire format, plus an Anthropic stream the client cuts, and requires the
// usage the gateway recorded to equal, to the token, what the upstream
// reported.
func TestUsageTotals(t *testing.T) {
	t.Parallel()
	up := newCountingUpstream(t)
	sink := &usageSink{}
	f := newFixture(t,
		withConfig(func(c *gateway.Config) {
			c.Providers["anthropic"] = gateway.Upstream{BaseURL: up.URL}
			c.Providers["openai"] = gateway.Upstream{BaseURL: up.URL}
		}),
		func(_ *fixture, o *gateway.Options) { o.Usage = sink })
	f.profiles("main", map[string]store.Credential{
		"anthropic:default": anthropicKey(keyA),
		"openai:default":    {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
	}, nil)
	ctx := context.Background()
	ac, oc := f.anthropicClient(), f.openaiClient()

	if _, err := ac.Messages.New(ctx, anthropicParams); err != nil {
		t.Fatal(err)
	}
	as := ac.Messages.NewStreaming(ctx, anthropicParams)
	var msg anthropic.Message
	for as.Next() {
		if err := msg.Accumulate(as.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := as.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Chat.Completions.New(ctx, openaiParams); err != nil {
		t.Fatal(err)
	}
	params := openaiParams
	params.StreamOptions.IncludeUsage = openai.Bool(true)
	cs := oc.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for cs.Next() {
		acc.AddChunk(cs.Current())
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Usage.TotalTokens == 0 {
		t.Fatal("the SDK saw no usage in the chat stream")
	}
	rs := oc.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	for rs.Next() {
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	cutStream(t, f)

	const answers = 6
	waitFor(t, "a usage record per answer", func() bool { return len(sink.records()) == answers })
	var got usage.Usage
	for _, r := range sink.records() {
		if r.Status != 200 || r.Agent != "main" || !strings.HasSuffix(r.Profile, ":default") || r.Model == "" {
			t.Errorf("record %+v: want status 200, agent main, a :default profile and the model", r)
		}
		got.Add(r.Usage)
	}
	if want := up.total(); got != want {
		t.Fatalf("gateway recorded %+v, upstream reported %+v", got, want)
	}

	// The one Anthropic JSON answer carried rate-limit headers (the first
	// request: 999 of 1000 left), read by the built-in module.
	lim := sink.observed()
	if len(lim) != 1 {
		t.Fatalf("limits observed %d times, want once: %+v", len(lim), lim)
	}
	want := usage.Window{Name: "requests", Limit: 1000, Remaining: 999, Utilization: 0.001,
		ResetAt: time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC)}
	if l := lim[0]; l.Profile != "anthropic:default" || l.Status != "allowed" || len(l.Windows) != 1 ||
		l.Windows[0].Name != want.Name || l.Windows[0].Remaining != 999 || l.Windows[0].Limit != 1000 ||
		!l.Windows[0].ResetAt.Equal(want.ResetAt) || l.Windows[0].Utilization < 0.00099 || l.Windows[0].Utilization > 0.00101 {
		t.Errorf("limits %+v, want profile anthropic:default, allowed, %+v", l, want)
	}
}

// cutStream reads an Anthropic stream up to its first text delta and
// hangs up, as a client that is interrupted does.
func cutStream(t *testing.T, f *fixture) {
	t.Helper()
	body := `{"model":"claude-sonnet-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest("POST", f.srv.URL+"/anthropic/v1/messages", strings.NewReader(body))
	req.Header.Set("x-api-key", gatewayToken)
	req.Header.Set("X-Test-Cut", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its first delta: %v", err)
		}
		if strings.Contains(line, "content_block_delta") {
			break
		}
	}
	resp.Body.Close()
	io.Copy(io.Discard, r)
}

// TestLimitsOnFailure: a 429's rate-limit headers are observed for the
// profile that got it, before the gateway fails over.
func TestLimitsOnFailure(t *testing.T) {
	t.Parallel()
	sink := &usageSink{}
	f := newFixture(t, func(_ *fixture, o *gateway.Options) { o.Usage = sink })
	f.profiles("main", map[string]store.Credential{
		"anthropic:a": anthropicKey(keyA),
		"anthropic:b": anthropicKey(keyB),
	}, map[string][]string{"anthropic": {"anthropic:a", "anthropic:b"}})
	f.anthropic.set(keyA, answer{status: 429, body: `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`,
		header: map[string]string{"retry-after": "30", "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-limit": "8000"}})
	f.anthropic.set(keyB, answer{})
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:b" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	lim := sink.observed()
	if len(lim) != 1 {
		t.Fatalf("limits observed %d times, want once (b's answer has no rate-limit headers): %+v", len(lim), lim)
	}
	l := lim[0]
	wantReset := f.clock.Now().Add(30 * time.Second)
	if l.Profile != "anthropic:a" || l.Status != "rejected" || !l.ResetAt.Equal(wantReset) || len(l.Windows) != 1 ||
		l.Windows[0].Name != "tokens" || l.Windows[0].Remaining != 0 || l.Windows[0].Headroom() != 0 {
		t.Errorf("limits %+v, want anthropic:a rejected until %v with no tokens left", l, wantReset)
	}
}

// TestUsageMetrics: with the real usage store as the sink, /metrics has
// tokens, cost, requests and headroom per profile; a profile named after
// an email shows as its hash, and no model label appears.
func TestUsageMetrics(t *testing.T) {
	t.Parallel()
	up := newCountingUpstream(t)
	st := openUsage(t, usage.Options{FlushInterval: -1})
	f := newFixture(t,
		withConfig(func(c *gateway.Config) { c.Providers["anthropic"] = gateway.Upstream{BaseURL: up.URL} }),
		func(_ *fixture, o *gateway.Options) { o.Usage = st })
	const id = "anthropic:someone@example.com"
	f.profiles("main", map[string]store.Credential{id: anthropicKey(keyA)}, nil)
	ac := f.anthropicClient()
	if _, err := ac.Messages.New(context.Background(), anthropicParams); err != nil {
		t.Fatal(err)
	}
	x := up.total()
	var body string
	waitFor(t, "the answer's usage in /metrics", func() bool {
		_, body = f.do("GET", "/metrics", "", nil)
		return strings.Contains(body, "opensoul_profile_requests_total")
	})
	for _, want := range []string{
		`opensoul_profile_tokens_total{kind="input",owner="main",profile="anthropic:id-`,
		`kind="output",owner="main",profile="anthropic:id-`,
		`opensoul_profile_cost_usd_total{owner="main",profile="anthropic:id-`,
		`opensoul_profile_headroom_ratio{owner="main",profile="anthropic:id-`,
		`window="requests"} 0.999`,
		fmt.Sprintf("} %d\n", x.Input),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "example.com") || strings.Contains(body, `model="claude`) {
		t.Error("/metrics shows an email or a model label")
	}
}

// openUsage opens a usage store with opts in a temp dir, closed when the
// test ends.
func openUsage(tb testing.TB, opts usage.Options) *usage.Store {
	tb.Helper()
	st, err := usage.Open(filepath.Join(tb.TempDir(), "usage.db"), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
