package gateway_test

import (
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
)

// BenchmarkGateway measures one non-streaming request through the whole
// gateway (auth, body, policy, module headers, proxy, state) against a
// local upstream, without the network client in the measurement loop
// beyond a recorder.
func BenchmarkGateway(b *testing.B) {
	f := newFixture(b, func(_ *fixture, o *gateway.Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA), "anthropic:b": anthropicKey(keyB)}, nil)
	f.anthropic.set(keyA, answer{})
	f.anthropic.set(keyB, answer{})
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
		FlushInterval: -1,
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
