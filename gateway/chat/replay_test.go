package chat_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captured is one request a real client sent, recorded by pointing it at
// a logging fake upstream (testdata/clients, secrets replaced: the
// client's credential is GATEWAY-TOKEN).
type captured struct {
	Note   string              `json:"note"`
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Header map[string][]string `json:"header"`
	Body   json.RawMessage     `json:"body"`
}

func loadCaptured(t *testing.T, name string) captured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	var c captured
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// request rebuilds the captured request against base, with the gateway
// token where the client's credential was.
func (c captured) request(t *testing.T, base, token string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(c.Method, base+c.Path, bytes.NewReader(c.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			r.Header.Add(k, strings.ReplaceAll(v, "GATEWAY-TOKEN", token))
		}
	}
	return r
}

// TestReplayChatCommands sends what real clients sent for a typed chat
// command (and for prompts that only look like one) to a real gateway:
// commands are answered by the gateway, the rest go upstream.
func TestReplayChatCommands(t *testing.T) {
	cases := map[string]bool{ // file → the gateway answers it as a command
		"claude-code-model-status.json": true,  // " /model status" after <system-reminder> parts, system message last
		"claude-code-double-slash.json": true,  // "//model status"
		"claude-code-escaped.json":      false, // "\/model status"
		"claude-code-prose.json":        false, // "what does /model do in opensoul?"
		"codex-model-status.json":       true,  // Responses: developer items, <environment_context> part
		"openclaw-model-status.json":    true,  // timestamp, internal-context part
		"ai-sdk-anthropic.json":         true,
		"ai-sdk-openai-responses.json":  true,
		"ai-sdk-openai-chat.json":       true,
		"langchain-anthropic.json":      true,
		"anthropic-sdk.json":            true,
		"openai-sdk-chat.json":          true,
		"openai-sdk-responses.json":     true,
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "clients", "*.json"))
	if len(files) != len(cases) {
		t.Errorf("testdata/clients has %d captures, the table %d: add the new ones here", len(files), len(cases))
	}
	f := newFixture(t)
	for name, isCommand := range cases {
		t.Run(name, func(t *testing.T) {
			c := loadCaptured(t, name)
			before := f.upstreamCount()
			resp, err := http.DefaultClient.Do(c.request(t, f.srv.URL, gatewayToken))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answered := resp.Header.Get("X-Opensoul-Chat") != ""
			if answered != isCommand {
				t.Errorf("%s: answered by the gateway = %v, want %v (status %d: %.200s)", c.Note, answered, isCommand, resp.StatusCode, body)
			}
			if upstream := f.upstreamCount() - before; (upstream == 0) != isCommand {
				t.Errorf("%s: %d upstream requests for a command=%v", c.Note, upstream, isCommand)
			}
			if isCommand && (resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("anthropic:"))) {
				t.Errorf("%s: want the /model status answer, got %d %.300s", c.Note, resp.StatusCode, body)
			}
			noSecrets(t, name, string(body))
		})
	}
}
