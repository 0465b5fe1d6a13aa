package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
)

// BenchmarkGateway measures one non-streaming request through the whole
// gateway (auth, body, policy, module headers, proxy, state) against a
// local upstream, without the network client in the measurement loop
// beyond a recorder.
func BenchmarkGateway(b *testing.B) {
	f := newFixture(b, func(_ *fixture, o *gateway.Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	rotatingKeys(f)
	body := `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/anthropic/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", gatewayToken)
		req.Header.Set("content-type", "application/json")
		w := httptest.NewRecorder()
		f.gw.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		io.Copy(io.Discard, w.Body)
	}
}

// BenchmarkBareProxy is BenchmarkGateway's baseline: a bare
// httputil.ReverseProxy in front of the same upstream.
func BenchmarkBareProxy(b *testing.B) {
	f := newFixture(b)
	f.anthropic.set(keyA, answer{})
	target, _ := url.Parse(f.anthropic.URL)
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = "" },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		FlushInterval: 0, // as the gateway's proxy
	}
	body := `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", keyA)
		req.Header.Set("content-type", "application/json")
		w := httptest.NewRecorder()
		proxy.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		io.Copy(io.Discard, w.Body)
	}
}

// BenchmarkGatewayProfiles is BenchmarkGateway with n stored profiles and
// the decision cached (a named session keeps its auto pin, the clock
// stands still): the per-request cost should not grow with n. "rotate" is
// the same without a session header: the gateway rotates over the policy's
// equal-rank candidates and the decision stays cached, but each profile's
// first success writes its lastUsed, a new snapshot whose profile facts
// are rebuilt (a pass over them). It reports CPU time per request beside
// wall time, because the machine may be shared.
func BenchmarkGatewayProfiles(b *testing.B) {
	for _, bc := range []struct {
		name    string
		n       int
		session string
	}{{"session-10", 10, "bench"}, {"session-100", 100, "bench"}, {"session-1000", 1000, "bench"}, {"rotate-1000", 1000, ""}} {
		n := bc.n
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, func(_ *fixture, o *gateway.Options) {
				o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			})
			creds := make(map[string]store.Credential, n)
			for i := range n {
				key := fmt.Sprintf("sk-ant-api03-BENCHKEY%04d-aaaaaaaaaaaaaaaaaaaa", i)
				creds[fmt.Sprintf("anthropic:p%04d", i)] = anthropicKey(key)
				f.anthropic.set(key, answer{})
			}
			f.profiles("main", creds, nil)
			body := `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
			send := func() {
				req := httptest.NewRequest("POST", "/anthropic/v1/messages", strings.NewReader(body))
				req.Header.Set("x-api-key", gatewayToken)
				req.Header.Set("content-type", "application/json")
				if bc.session != "" {
					req.Header.Set("x-opensoul-session", bc.session)
				}
				w := httptest.NewRecorder()
				f.gw.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			send() // loads the agent, checks the keys, sets the auto pin
			send()
			b.ReportAllocs()
			start := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				send()
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time this process has used.
var cpuTime = gateway.CPUTime

// BenchmarkGatewayUsage is BenchmarkGateway without and with the usage
// store as the sink: every answer metered (the body scanned for usage)
// and recorded, flushed to SQLite once a second. CPU time per request
// is reported beside wall time.
func BenchmarkGatewayUsage(b *testing.B) {
	for _, withStore := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "store"}[withStore]
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, func(_ *fixture, o *gateway.Options) {
				o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
				if withStore {
					o.Usage = openUsage(b, usage.Options{})
				}
			})
			f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
			f.anthropic.set(keyA, answer{})
			body := `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/anthropic/v1/messages", strings.NewReader(body))
				req.Header.Set("x-api-key", gatewayToken)
				req.Header.Set("content-type", "application/json")
				w := httptest.NewRecorder()
				f.gw.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
