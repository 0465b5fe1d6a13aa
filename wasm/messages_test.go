package wasm

import (
	"net/http"
	"strings"
	"testing"
)

func TestHeadersApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before http.Header
		res    HeadersResult
		want   http.Header
	}{
		{"api key replaces the gateway token",
			http.Header{"X-Api-Key": {"gateway"}, "Authorization": {"Bearer gateway"}},
			HeadersResult{Set: map[string]string{"x-api-key": "k"}, Remove: []string{"authorization"}},
			http.Header{"X-Api-Key": {"k"}}},
		{"oauth beta merges with the client's",
			http.Header{"Anthropic-Beta": {"prompt-caching-2024-07-31, oauth-2025-04-20"}, "X-Api-Key": {"gateway"}},
			HeadersResult{Set: map[string]string{"authorization": "Bearer t", "anthropic-beta": "oauth-2025-04-20"}, Remove: []string{"x-api-key"}},
			http.Header{"Authorization": {"Bearer t"}, "Anthropic-Beta": {"prompt-caching-2024-07-31,oauth-2025-04-20"}}},
		{"oauth beta alone",
			http.Header{},
			HeadersResult{Set: map[string]string{"anthropic-beta": "oauth-2025-04-20"}},
			http.Header{"Anthropic-Beta": {"oauth-2025-04-20"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.before.Clone()
			tt.res.Apply(h)
			if len(h) != len(tt.want) {
				t.Fatalf("got %v, want %v", h, tt.want)
			}
			for k, v := range tt.want {
				if h.Get(k) != v[0] || len(h.Values(k)) != 1 {
					t.Errorf("%s = %q, want %q", k, h.Values(k), v)
				}
			}
		})
	}
}

func TestValidHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		res  HeadersResult
		ok   bool
	}{
		{"plain", HeadersResult{Set: map[string]string{"authorization": "Bearer x"}}, true},
		{"header injection", HeadersResult{Set: map[string]string{"authorization": "Bearer x\r\nHost: evil"}}, false},
		{"bad name", HeadersResult{Set: map[string]string{"bad name": "x"}}, false},
		{"bad remove", HeadersResult{Remove: []string{""}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := validHeaders(tt.res); (err == nil) != tt.ok {
				t.Errorf("validHeaders = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDecodeResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw string
		ok        bool
	}{
		{"ok", `{"ok":true,"valid":true,"kind":"api_key"}`, true},
		{"no ok", `{"valid":true}`, false},
		{"not json", "\x00garbage", false},
		{"wrong type", `{"ok":true,"valid":"yes"}`, false},
		{"error without body", `{"ok":false}`, false},
		{"guest error", `{"ok":false,"error":{"code":"boom","message":"bad"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var resp struct {
				envelope
				CheckResult
			}
			if err := decodeResponse([]byte(tt.raw), &resp.envelope, &resp); (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{`{"ok":true,"set":{"a":"b"},"remove":["c"]}`, `{"ok":false,"error":{"code":"unsupported_op"}}`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var resp struct {
			envelope
			HeadersResult
		}
		if decodeResponse(raw, &resp.envelope, &resp) == nil && *resp.OK {
			_ = validHeaders(resp.HeadersResult)
		}
	})
}

func TestValidClientName(t *testing.T) {
	t.Parallel()
	for s, ok := range map[string]bool{
		"claude-code": true, "codex": true, "ai-sdk": true, "x1": true,
		"": false, "Claude Code": false, "claude_code": false, "a\nb": false, strings.Repeat("a", 65): false,
	} {
		if got := validClientName(s); got != ok {
			t.Errorf("validClientName(%q) = %v, want %v", s, got, ok)
		}
	}
}
