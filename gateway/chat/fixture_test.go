package chat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// Fixture secrets. None may appear in any answer or log.
const (
	gatewayToken = "osgw-GATEWAYTOKEN-0123456789abcdef"
	keyDefault   = "sk-ant-api03-SECRETDEFAULT-aaaaaaaaaaaaaaaaaaaa"
	keyWork      = "sk-ant-api03-SECRETWORK-bbbbbbbbbbbbbbbbbbbbbbb"
	tokenSub     = "sk-ant-oat01-SECRETSUB-cccccccccccccccccccccccc"
	keyBilling   = "sk-ant-api03-SECRETBILLING-dddddddddddddddddddd"
	openaiKey    = "sk-proj-SECRETOPENAI-eeeeeeeeeeeeeeeeeeeeeeeeee"
	envKey       = "sk-ant-api03-SECRETENVKEY-ffffffffffffffffffffff"
)

var allSecrets = []string{gatewayToken, keyDefault, keyWork, tokenSub, keyBilling, openaiKey, envKey}

// now is the fixture's fixed clock.
var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return now }

// seen is one request an upstream received.
type seen struct {
	secret, model, path string
}

// upstream is a fake provider that answers every request "hello" in its
// wire format and records what it saw.
type upstream struct {
	*httptest.Server
	kind string

	mu  sync.Mutex
	got []seen
}

func newUpstream(t *testing.T, kind string) *upstream {
	u := &upstream{kind: kind}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.got...)
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	secret := r.Header.Get("x-api-key")
	if secret == "" {
		secret = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	var req struct {
		Model string `json:"model"`
	}
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &req)
	u.mu.Lock()
	u.got = append(u.got, seen{secret: secret, model: req.Model, path: r.URL.Path})
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if u.kind == "anthropic" {
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}`, req.Model)
		return
	}
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, req.Model)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is a real gateway with the chat handler over a temp state dir,
// with fake Anthropic and OpenAI upstreams.
type fixture struct {
	t         *testing.T
	st        *store.Store
	anthropic *upstream
	openai    *upstream
	logs      *syncBuffer
	chatCfg   chat.Config
	env       gateway.Env

	gw  *gateway.Server
	srv *httptest.Server
}

// chatConfig is a config with aliases for two providers.
func chatConfig(anthropicURL, openaiURL string) chat.Config {
	return chat.Config{
		DefaultModel: "anthropic/claude-sonnet-5",
		Fallbacks:    []string{"anthropic/claude-haiku-5"},
		Models: map[string]string{
			"anthropic/claude-sonnet-5": "sonnet",
			"anthropic/claude-opus-5":   "opus",
			"anthropic/claude-haiku-5":  "",
			"openai/gpt-5":              "gpt",
		},
		Providers: map[string]chat.Provider{
			"anthropic": {BaseURL: anthropicURL},
			"openai":    {BaseURL: openaiURL},
		},
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, st: store.New(t.TempDir()), logs: &syncBuffer{}}
	f.anthropic = newUpstream(t, "anthropic")
	f.openai = newUpstream(t, "openai")
	f.chatCfg = chatConfig(f.anthropic.URL, f.openai.URL)
	f.env = gateway.Env{}
	f.profiles(map[string]store.Credential{
		"anthropic:default": {Type: store.TypeAPIKey, Provider: "anthropic", Key: keyDefault},
		"anthropic:work":    {Type: store.TypeAPIKey, Provider: "anthropic", Key: keyWork},
		"openai:main":       {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
	})
	f.start()
	return f
}

// start runs a gateway (and its chat handler) over the fixture's state.
func (f *fixture) start() {
	f.t.Helper()
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := gateway.New(gateway.Options{
		Store: f.st,
		Config: gateway.Config{
			Token: gatewayToken,
			Providers: map[string]gateway.Upstream{
				"anthropic": {BaseURL: f.anthropic.URL},
				"openai":    {BaseURL: f.openai.URL},
			},
		},
		Env:      f.env,
		Selector: engine,
		// Wired as `opensoul gateway` wires it: the gateway's live view.
		Chat: func(gw *gateway.Server) (gateway.ChatInterceptor, error) {
			return chat.New(chat.Options{
				Store: f.st, Config: f.chatCfg, Selector: engine,
				Env: gw.Env, Snapshot: gw.Snapshot, Refresh: gw.Refresh,
				Now: fixedNow, Logger: log,
			})
		},
		Logger:       log,
		Now:          fixedNow,
		PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.gw = gw
	f.srv = httptest.NewServer(gw)
	f.t.Cleanup(f.stop)
}

// stop shuts the gateway down; safe twice.
func (f *fixture) stop() {
	if f.srv != nil {
		f.srv.Close()
		f.gw.Close()
		f.srv, f.gw = nil, nil
	}
}

// restart stops the gateway and starts a new one over the same state dir.
func (f *fixture) restart() {
	f.stop()
	f.start()
}

func (f *fixture) profiles(creds map[string]store.Credential) {
	f.t.Helper()
	if err := f.st.UpdateProfiles("main", func(p *store.Profiles) error {
		for id, c := range creds {
			p.Profiles[id] = c
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) session(id string) store.Session {
	f.t.Helper()
	ss, err := f.st.LoadSessions("main")
	if err != nil {
		f.t.Fatal(err)
	}
	if s := ss.Sessions[id]; s != nil {
		return *s
	}
	return store.Session{}
}

// upstreamCount is how many requests both upstreams saw.
func (f *fixture) upstreamCount() int {
	return len(f.anthropic.requests()) + len(f.openai.requests())
}

// noSecrets fails when any fixture secret appears in s.
func noSecrets(t *testing.T, where, s string) {
	t.Helper()
	for _, sec := range allSecrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s shows a secret (…%s)", where, sec[len(sec)-6:])
		}
	}
}

// waitFor polls cond until it holds; it bounds the wait, it does not time
// anything.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
