package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// TestExposedNeedsAToken: beyond loopback a config whose only tokens are
// empty is refused by New and by SetConfig (which keeps the old config).
func TestExposedNeedsAToken(t *testing.T) {
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.Exposed = true }))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})

	open := f.cfg
	open.Token, open.AgentTokens = "", map[string]string{"cron": ""}
	if err := f.gw.SetConfig(open); !errors.Is(err, gateway.ErrNoToken) {
		t.Fatalf("SetConfig without a token: %v", err)
	}
	if resp, _ := f.messages("m", map[string]string{"x-api-key": ""}); resp.StatusCode != 401 {
		t.Errorf("after the refused SetConfig, no token: %d", resp.StatusCode)
	}
	if resp, _ := f.messages("m", nil); resp.StatusCode != 200 {
		t.Errorf("after the refused SetConfig, the old token: %d", resp.StatusCode)
	}
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := gateway.Options{Store: f.st, Config: open, Selector: engine, Logger: slog.New(slog.DiscardHandler)}
	if _, err := gateway.New(o); !errors.Is(err, gateway.ErrNoToken) {
		t.Errorf("New without a token: %v", err)
	}
	// Loopback-only, an open gateway is allowed.
	open.Exposed = false
	if err := f.gw.SetConfig(open); err != nil {
		t.Errorf("loopback without a token: %v", err)
	}
}

// TestMetricsExposed: beyond loopback /metrics asks for the gateway
// token, and no profile id holding an email reaches a label.
func TestMetricsExposed(t *testing.T) {
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.Exposed = true }))
	id := "anthropic:jane.doe@example.com"
	f.profiles("main", map[string]store.Credential{id: anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{status: 429, body: `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`})
	f.messages("m", nil)
	if resp, _ := f.do("GET", "/metrics", "", nil); resp.StatusCode != 401 {
		t.Errorf("/metrics without a token: %d", resp.StatusCode)
	}
	if resp, _ := f.do("GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + workToken}); resp.StatusCode != 401 {
		t.Errorf("/metrics with an agent token while a gateway token is set: %d", resp.StatusCode)
	}
	resp, body := f.do("GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + gatewayToken})
	if resp.StatusCode != 200 || !strings.Contains(body, "opensoul_profile_failures_total") {
		t.Fatalf("/metrics with the token: %d", resp.StatusCode)
	}
	if strings.Contains(body, "example.com") || strings.Contains(body, "jane") {
		t.Errorf("an email reached the metrics:\n%s", grepLines(body, "example.com"))
	}
	if !strings.Contains(body, `profile="anthropic:id-`) {
		t.Errorf("the profile is not shown by its hashed id:\n%s", grepLines(body, "opensoul_profile"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// stalledBody opens a raw connection that declares length bytes of body
// and sends only sent of them.
func stalledBody(t *testing.T, f *fixture, length, sent int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n", gatewayToken, length)
	c.Write(bytes.Repeat([]byte(" "), sent))
	return c
}

// TestDeclaredLengthIsNotAllocated: bodies that declare 32 MiB and send
// 10 bytes cost what arrived, not what was declared, and are answered
// 408 when gateway.timeouts.bodyReadMs passes.
func TestDeclaredLengthIsNotAllocated(t *testing.T) {
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.MaxBodyBytes = 32 << 20
		c.BodyReadTimeout = 300 * time.Millisecond
	}))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var conns []net.Conn
	for range 4 {
		conns = append(conns, stalledBody(t, f, 32<<20, 10))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("conn %d: no answer to a stalled body: %v", i, err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("conn %d: %d, want 408", i, resp.StatusCode)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("4 stalled 32 MiB bodies allocated %d MiB", grew>>20)
	}
}

// TestBodyBudget: while the budget is held by a slow body, another body
// waits gateway.bodyBudgetWaitMs and gets 503 with Retry-After; once
// the slow body goes, bodies are accepted again.
func TestBodyBudget(t *testing.T) {
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.BodyBudgetBytes = 64 << 10
		c.BodyBudgetWait = 50 * time.Millisecond
	}))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	slow := stalledBody(t, f, 1<<20, 40<<10) // holds 64 KiB once 40 KiB are in
	pad := `{"model":"m","max_tokens":10,"messages":[],"metadata":{"pad":"` + strings.Repeat("x", 20<<10) + `"}}`
	h := map[string]string{"x-api-key": gatewayToken}
	var resp *http.Response
	var body string
	waitFor(t, "a body to find the budget taken", func() bool {
		resp, body = f.do("POST", "/anthropic/v1/messages", pad, h)
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "bodyBudgetBytes") {
		t.Errorf("503 without Retry-After or the key to raise: %v %s", resp.Header, body)
	}
	slow.Close()
	waitFor(t, "the budget to come back", func() bool {
		resp, _ = f.do("POST", "/anthropic/v1/messages", pad, h)
		return resp.StatusCode == 200
	})
}

// TestBodyDeadlineSparesStreams: a streamed answer that takes longer than
// the body read deadline is delivered whole.
func TestBodyDeadlineSparesStreams(t *testing.T) {
	slowSSE := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := range 3 {
			time.Sleep(150 * time.Millisecond)
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(slowSSE.Close)
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.BodyReadTimeout = 100 * time.Millisecond
		c.Providers["anthropic"] = gateway.Upstream{BaseURL: slowSSE.URL}
	}))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	resp, body := f.do("POST", "/anthropic/v1/messages", `{"model":"m","stream":true}`, map[string]string{"x-api-key": gatewayToken})
	if resp.StatusCode != 200 || !strings.Contains(body, `{"n":2}`) {
		t.Errorf("stream cut: %d %q", resp.StatusCode, body)
	}
}

// TestUnknownAgentIsRefused: a name in x-opensoul-agent that is neither
// configured nor on disk gets 403 saying how to add it, and no directory.
func TestUnknownAgentIsRefused(t *testing.T) {
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	resp, body := f.messages("m", map[string]string{"x-opensoul-agent": "junk1"})
	if resp.StatusCode != 403 || !strings.Contains(body, "--agent junk1") {
		t.Errorf("unknown agent: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(f.st.AgentDir("junk1")); err == nil {
		t.Errorf("a request created agents/junk1")
	}
	// A configured agent (it has a token) and one on disk are served.
	if resp, body := f.messages("m", map[string]string{"x-opensoul-agent": "work"}); resp.StatusCode != 200 {
		t.Errorf("configured agent: %d %s", resp.StatusCode, body)
	}
	f.profiles("ondisk", map[string]store.Credential{"anthropic:d": anthropicKey(keyA)}, nil)
	if resp, body := f.messages("m", map[string]string{"x-opensoul-agent": "ondisk"}); resp.StatusCode != 200 {
		t.Errorf("agent on disk: %d %s", resp.StatusCode, body)
	}
}

// TestLongSessionIdIsRefused: a session id over the limit gets 400 and
// never reaches sessions.json.
func TestLongSessionIdIsRefused(t *testing.T) {
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	long := strings.Repeat("s", 4<<10)
	if resp, _ := f.messages("m", map[string]string{"x-opensoul-session": long}); resp.StatusCode != 400 {
		t.Errorf("4 KiB session id: %d", resp.StatusCode)
	}
	f.gw.Flush()
	ss, err := f.st.LoadSessions("main")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ss.Sessions[long]; ok {
		t.Errorf("the long session id was stored")
	}
}

// hugeRetry is a provider module whose classify asks for years of wait.
type hugeRetry struct{ gateway.Modules }

func (h hugeRetry) Classify(ctx context.Context, provider string, req wasm.ClassifyRequest) (wasm.Classification, error) {
	ms := int64(100_000_000_000) // about 3 years
	return wasm.Classification{Failover: true, Reason: wasm.ReasonRateLimit, RetryAfterMs: &ms}, nil
}

// TestRetryAfterIsClamped: a module's retryAfterMs and an upstream's
// Retry-After cool a credential for at most a day, and the client is told
// the clamped wait.
func TestRetryAfterIsClamped(t *testing.T) {
	f := newFixture(t, func(f *fixture, o *gateway.Options) { o.Modules = hugeRetry{providerModules(t)} })
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{status: 429, body: `{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}`})
	resp, _ := f.messages("m", nil)
	if resp.StatusCode != 429 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra <= 0 || ra > 86400 {
		t.Errorf("client told Retry-After %q", resp.Header.Get("Retry-After"))
	}
	u := f.state("main").UsageStats["anthropic:a"]
	if limit := f.clock.Now().Add(24 * time.Hour).UnixMilli(); u == nil || u.CooldownUntil <= 0 || u.CooldownUntil > limit {
		t.Errorf("cooldown until %v, want within a day", u)
	}

	// An answer passed through (not a failover) keeps Retry-After, clamped.
	f2 := newFixture(t)
	f2.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f2.anthropic.set(keyA, answer{status: 400, body: `{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}`,
		header: map[string]string{"Retry-After": "99999999999", "retry-after-ms": "99999999999999"}})
	resp, _ = f2.messages("m", nil)
	if resp.Header.Get("Retry-After") != "86400" || resp.Header.Get("retry-after-ms") != "86400000" {
		t.Errorf("passed-through Retry-After %q, retry-after-ms %q", resp.Header.Get("Retry-After"), resp.Header.Get("retry-after-ms"))
	}
}
