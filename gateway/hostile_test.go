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
	"sync"
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
	// A wait beyond gateway.retryWaitMaxMs is final (no Retry-After);
	// one that is given is never over a day.
	if v := resp.Header.Get("Retry-After"); v != "" {
		if ra, _ := strconv.Atoi(v); ra <= 0 || ra > 86400 {
			t.Errorf("client told Retry-After %q", v)
		}
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

// echoUpstream is an upstream run by a handler of the test's own, recording
// each request's URL and key.
type echoUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	urls []string
}

func newEchoUpstream(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *echoUpstream {
	rec := &echoUpstream{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.urls = append(rec.urls, r.URL.RequestURI())
		rec.mu.Unlock()
		io.ReadAll(r.Body)
		h(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *echoUpstream) seen() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.urls...)
}

func withUpstream(rec *echoUpstream) fixtureOpt {
	return withConfig(func(c *gateway.Config) { c.Providers["anthropic"] = gateway.Upstream{BaseURL: rec.URL} })
}

func ok200(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"ok":true}`, nil) }

// TestQueryTokenIsStripped: a gateway token in the query never reaches
// the provider; the other parameters do, unchanged.
func TestQueryTokenIsStripped(t *testing.T) {
	rec := newEchoUpstream(t, ok200)
	f := newFixture(t, withUpstream(rec))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	resp, _ := f.do("POST", "/anthropic/v1/messages?key="+gatewayToken+"&beta=true&k2="+workToken, `{"model":"m"}`, map[string]string{"x-api-key": gatewayToken})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := rec.seen(); len(got) != 1 || got[0] != "/v1/messages?beta=true" {
		t.Errorf("upstream saw %q", got)
	}
}

// TestUnsafePathsAreRefused: control characters and backslashes, plain or
// encoded, get 400 and reach no upstream.
func TestUnsafePathsAreRefused(t *testing.T) {
	rec := newEchoUpstream(t, ok200)
	f := newFixture(t, withUpstream(rec))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	for _, path := range []string{`/anthropic/v1/a\b`, "/anthropic/v1/a%5cb", "/anthropic/v1/a%5Cb", "/anthropic/v1/a%00b", "/anthropic/v1/a%0d%0aX-Injected:%20y", "/anthropic/v1/a%09b", "/anthro%5cpic/v1/messages"} {
		c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}", path, gatewayToken)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		c.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", path, resp.StatusCode)
		}
	}
	if got := rec.seen(); len(got) != 0 {
		t.Errorf("upstream saw %q", got)
	}
}

// TestEchoedSecretsAreScrubbed: an upstream that echoes the key it got,
// in headers and in the body (whole, and split across two streamed
// chunks), reaches an agent-token caller masked.
func TestEchoedSecretsAreScrubbed(t *testing.T) {
	rec := newEchoUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("x-api-key")
		w.Header().Set("x-api-key", key)
		w.Header().Set("Authorization", "Bearer "+key)
		w.Header().Set("x-goog-api-key", key)
		w.Header().Set("x-debug", "got "+key)
		if r.URL.Path == "/v1/error" {
			writeJSON(w, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"bad key `+key+`"}}`, map[string]string{"x-api-key": key})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		half := len(key) / 2
		io.WriteString(w, "data: {\"echo\":\""+key[:half])
		w.(http.Flusher).Flush()
		io.WriteString(w, key[half:]+"\"}\n\n")
	})
	f := newFixture(t, withUpstream(rec))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	for _, path := range []string{"/anthropic/v1/error", "/anthropic/v1/messages"} {
		resp, body := f.do("POST", path, `{"model":"m","stream":true}`, map[string]string{"x-api-key": workToken})
		var all strings.Builder
		resp.Header.Write(&all)
		all.WriteString(body)
		if strings.Contains(all.String(), keyA) || strings.Contains(all.String(), keyA[len(keyA)-8:]) {
			t.Errorf("%s: the stored key reached the client:\n%s", path, all.String())
		}
		for _, h := range []string{"x-api-key", "Authorization", "x-goog-api-key"} {
			if resp.Header.Get(h) != "" {
				t.Errorf("%s: credential header %s passed on", path, h)
			}
		}
		if !strings.Contains(body, "sk-ant-api03-***") {
			t.Errorf("%s: no mask in the body: %q", path, body)
		}
	}
}

// TestRedirects: a 3xx is neither success nor failover. One to another
// host is answered 502 naming it; one under the base URL is passed on
// with a gateway path. Neither records lastGood or a session pin.
func TestRedirects(t *testing.T) {
	var rec *echoUpstream
	rec = newEchoUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/away":
			w.Header().Set("Location", "http://evil.example/steal")
		default:
			w.Header().Set("Location", rec.URL+"/v1/other?x=1")
		}
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	f := newFixture(t, withUpstream(rec))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA), "anthropic:b": anthropicKey(keyB)}, nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(`{"model":"m"}`))
		req.Header.Set("x-api-key", gatewayToken)
		req.Header.Set("x-opensoul-session", "s1")
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post("/anthropic/v1/away")
	if resp.StatusCode != 502 || !strings.Contains(body, "evil.example") || resp.Header.Get("Location") != "" {
		t.Errorf("foreign redirect: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, _ = post("/anthropic/v1/here")
	if resp.StatusCode != 307 || resp.Header.Get("Location") != "/anthropic/v1/other?x=1" {
		t.Errorf("same-host redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := len(rec.seen()); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (no failover on a redirect)", n)
	}
	if st := f.state("main"); len(st.LastGood) != 0 {
		t.Errorf("a redirect set lastGood: %v", st.LastGood)
	}
	if ss, _ := f.st.LoadSessions("main"); len(ss.Sessions) != 0 {
		t.Errorf("a redirect pinned a session: %v", ss.Sessions)
	}
	if !strings.Contains(f.logs.String(), "redirected to another host") || !strings.Contains(f.logs.String(), "redirect passed on") {
		t.Errorf("redirects not logged")
	}
}

// TestUpstream5xxKeepsItsFamily: an upstream 500 is a 502 to the client,
// not a 504 "timeout"; a connection refused is a 502 too.
func TestUpstream5xxKeepsItsFamily(t *testing.T) {
	rec := newEchoUpstream(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 500, `{"error":"boom"}`, nil) })
	f := newFixture(t, withUpstream(rec))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	if resp, body := f.messages("m", nil); resp.StatusCode != 502 || strings.Contains(body, `"timeout"`) {
		t.Errorf("upstream 500: %d %s", resp.StatusCode, body)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	f2 := newFixture(t, withConfig(func(c *gateway.Config) { c.Providers["anthropic"] = gateway.Upstream{BaseURL: dead.URL} }))
	f2.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	if resp, body := f2.messages("m", nil); resp.StatusCode != 502 {
		t.Errorf("connection refused: %d %s", resp.StatusCode, body)
	}
}
