package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
