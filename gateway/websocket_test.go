package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/opensoul/opensoul/gateway"
)

// TestWebSocketUpgradeGets426: Codex opens a WebSocket on
// /openai/v1/responses before it posts. A real WebSocket handshake gets
// 426 Upgrade Required (the answer Codex 0.171.0 takes as "use HTTP",
// falling back at once; 404 and 501 cost it seven attempts), in the
// provider's error shape, with nothing forwarded, whatever the token;
// the HTTP request that follows is served.
func TestWebSocketUpgradeGets426(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.Providers["openai"] = gateway.Upstream{BaseURL: c.Providers["openai"].BaseURL, APIKey: openaiKey}
	}))
	f.openai.set(openaiKey, answer{})
	wsURL := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/openai/v1/responses"
	for _, token := range []string{gatewayToken, "wrong-token"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		})
		cancel()
		if err == nil {
			conn.CloseNow()
			t.Fatal("the WebSocket handshake succeeded")
		}
		if resp == nil {
			t.Fatalf("no HTTP answer to the handshake: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Message, Type string }
		}
		if resp.StatusCode != http.StatusUpgradeRequired || json.Unmarshal(body, &e) != nil ||
			!strings.Contains(e.Error.Message, "WebSockets") || resp.Header.Get("X-Should-Retry") != "false" {
			t.Errorf("token %q: %d %s %q", token, resp.StatusCode, body, resp.Header.Get("X-Should-Retry"))
		}
	}
	if n := len(f.openai.requests()); n != 0 {
		t.Fatalf("%d WebSocket attempts forwarded", n)
	}
	resp, body := f.do("POST", "/openai/v1/responses", `{"model":"gpt-5","input":"hi"}`, map[string]string{"Authorization": "Bearer " + gatewayToken})
	if resp.StatusCode != 200 || len(f.openai.requests()) != 1 {
		t.Errorf("the HTTP request after the WebSocket attempt: %d %s (%d forwarded)", resp.StatusCode, body, len(f.openai.requests()))
	}
}
