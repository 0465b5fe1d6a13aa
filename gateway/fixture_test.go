package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// The real provider modules, compiled once for every test.
var (
	modulesOnce sync.Once
	modules     *wasm.Registry
	modulesErr  error
)

func providerModules(t testing.TB) *wasm.Registry {
	t.Helper()
	modulesOnce.Do(func() {
		ctx := context.Background()
		// A compilation cache shared by test runs keeps -race runs quick.
		host, err := wasm.NewHost(ctx, wasm.Options{CacheDir: filepath.Join(os.TempDir(), "opensoul-gateway-test-wazero")})
		if err != nil {
			modulesErr = err
			return
		}
		reg, errs := wasm.NewRegistry(ctx, host, nil)
		if errs = append(errs, reg.Load(ctx)...); len(errs) > 0 {
			modulesErr = errs[0]
			return
		}
		modules = reg
	})
	if modulesErr != nil {
		t.Fatal(modulesErr)
	}
	return modules
}

// Fixture secrets. None of them may ever appear in gateway output.
const (
	gatewayToken = "osgw-GATEWAYTOKEN-0123456789abcdef"
	workToken    = "osgw-WORKAGENTTOKEN-fedcba987654"
	keyA         = "sk-ant-api03-SECRETKEYA-aaaaaaaaaaaaaaaaaaaa"
	keyB         = "sk-ant-api03-SECRETKEYB-bbbbbbbbbbbbbbbbbbbb"
	tokenC       = "sk-ant-oat01-SECRETTOKENC-cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	openaiKey    = "sk-proj-SECRETOPENAI-dddddddddddddddddddd"
	openaiKey2   = "sk-proj-SECRETOPENAI2-eeeeeeeeeeeeeeeeeeee"
	envKey       = "sk-ant-api03-SECRETENVKEY-ffffffffffffffffff"
)

var allSecrets = []string{gatewayToken, workToken, keyA, keyB, tokenC, openaiKey, openaiKey2, envKey}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
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

// answer is how the fake upstream replies to one secret.
type answer struct {
	status int
	body   string
	header map[string]string
	// models, when set, limits the models this secret serves; others get
	// the failure above. Empty: every request gets the failure (or success
	// when status is 0).
	models map[string]bool
}

// seen is one request the upstream received.
type seen struct {
	secret string
	model  string
	path   string
	header http.Header
	body   string
}

// upstream is a fake provider speaking Anthropic's or OpenAI's wire format.
type upstream struct {
	*httptest.Server
	kind string // anthropic | openai

	mu      sync.Mutex
	answers map[string]answer
	got     []seen
}

func newUpstream(t testing.TB, kind string) *upstream {
	u := &upstream{kind: kind, answers: map[string]answer{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) set(secret string, a answer) {
	u.mu.Lock()
	u.answers[secret] = a
	u.mu.Unlock()
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.got...)
}

func (u *upstream) secrets() []string {
	var out []string
	for _, s := range u.requests() {
		out = append(out, s.secret)
	}
	return out
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	secret := r.Header.Get("x-api-key")
	if secret == "" {
		secret = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.Unmarshal(body, &req)
	u.mu.Lock()
	u.got = append(u.got, seen{secret: secret, model: req.Model, path: r.URL.Path, header: r.Header.Clone(), body: string(body)})
	a, known := u.answers[secret]
	u.mu.Unlock()
	if !known {
		writeJSON(w, 401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, nil)
		return
	}
	if a.status != 0 && (a.models == nil || !a.models[req.Model]) {
		writeJSON(w, a.status, a.body, a.header)
		return
	}
	switch {
	case u.kind == "anthropic" && req.Stream:
		anthropicStream(w, req.Model)
	case u.kind == "anthropic":
		writeJSON(w, 200, fmt.Sprintf(`{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}`, req.Model), nil)
	case req.Stream:
		openAIStream(w, req.Model)
	default:
		writeJSON(w, 200, fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, req.Model), nil)
	}
}

func writeJSON(w http.ResponseWriter, status int, body string, header map[string]string) {
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func sse(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	f := w.(http.Flusher)
	for _, e := range events {
		io.WriteString(w, e+"\n\n")
		f.Flush()
	}
}

func anthropicStream(w http.ResponseWriter, model string) {
	sse(w,
		`event: message_start`+"\n"+`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"`+model+`","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":0}}}`,
		`event: content_block_start`+"\n"+`data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`event: content_block_delta`+"\n"+`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hel"}}`,
		`event: content_block_delta`+"\n"+`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}`,
		`event: content_block_stop`+"\n"+`data: {"type":"content_block_stop","index":0}`,
		`event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}`,
		`event: message_stop`+"\n"+`data: {"type":"message_stop"}`,
	)
}

func openAIStream(w http.ResponseWriter, model string) {
	chunk := func(delta, finish string) string {
		return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"` + model + `","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}`
	}
	sse(w,
		chunk(`{"role":"assistant","content":"hel"}`, "null"),
		chunk(`{"content":"lo"}`, "null"),
		chunk(`{}`, `"stop"`),
		`data: [DONE]`,
	)
}

// fixture is a gateway over a temp state dir with fake upstreams.
type fixture struct {
	t         testing.TB
	st        *store.Store
	clock     *clock
	logs      *syncBuffer
	anthropic *upstream
	openai    *upstream
	gw        *gateway.Server
	srv       *httptest.Server
	cfg       gateway.Config
	engine    *policy.Engine // the gateway's selector, unless an option replaced it
}

type fixtureOpt func(*fixture, *gateway.Options)

func withEnv(env gateway.Env) fixtureOpt {
	return func(_ *fixture, o *gateway.Options) { o.Env = env }
}

func withConfig(fn func(*gateway.Config)) fixtureOpt {
	return func(_ *fixture, o *gateway.Options) { fn(&o.Config) }
}

func newFixture(t testing.TB, opts ...fixtureOpt) *fixture {
	t.Helper()
	f := &fixture{
		t:     t,
		st:    store.New(t.TempDir()),
		clock: &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		logs:  &syncBuffer{},
	}
	f.anthropic = newUpstream(t, "anthropic")
	f.openai = newUpstream(t, "openai")
	// A generous evaluation bound: under -race on a loaded 2-core machine
	// the built-in policy can take longer than policy.DefaultTimeout, and
	// these tests are not about the bound (policy's TestDecideTimeout is).
	engine, err := policy.New(context.Background(), policy.Options{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = engine
	o := gateway.Options{
		Store: f.st,
		Config: gateway.Config{
			Token:       gatewayToken,
			AgentTokens: map[string]string{"work": workToken},
			Providers: map[string]gateway.Upstream{
				"anthropic": {BaseURL: f.anthropic.URL},
				"openai":    {BaseURL: f.openai.URL},
			},
			MaxBodyBytes: 1 << 20,
		},
		Selector:     engine,
		Modules:      providerModules(t),
		Logger:       slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:          f.clock.Now,
		PollInterval: 10 * time.Millisecond,
	}
	for _, fn := range opts {
		fn(f, &o)
	}
	f.cfg = o.Config
	f.gw, err = gateway.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.gw)
	t.Cleanup(func() {
		f.srv.Close()
		f.gw.Close()
	})
	return f
}

// profiles writes agent's auth-profiles.json.
func (f *fixture) profiles(agent string, creds map[string]store.Credential, order map[string][]string) {
	f.t.Helper()
	err := f.st.UpdateProfiles(agent, func(p *store.Profiles) error {
		for id, c := range creds {
			p.Profiles[id] = c
		}
		for prov, ids := range order {
			p.Order[prov] = ids
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// state flushes what the gateway learned and returns agent's auth-state.json.
func (f *fixture) state(agent string) *store.State {
	f.t.Helper()
	f.gw.Flush()
	st, err := f.st.LoadState(agent)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// do sends a raw request to the gateway.
func (f *fixture) do(method, path, body string, header map[string]string) (*http.Response, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func (f *fixture) messages(model string, header map[string]string) (*http.Response, string) {
	h := map[string]string{"x-api-key": gatewayToken, "anthropic-version": "2023-06-01"}
	for k, v := range header {
		h[k] = v
	}
	return f.do("POST", "/anthropic/v1/messages", `{"model":"`+model+`","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, h)
}

func anthropicKey(key string) store.Credential {
	return store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: key}
}

// waitFor polls cond until it holds; it bounds the wait, it does not time
// the gateway.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			// Show where the state poller is, in case it is stuck.
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 2)
			var live []string
			for _, g := range strings.Split(buf.String(), "\n\n") {
				if strings.Contains(g, "gateway.(*live)") {
					live = append(live, g)
				}
			}
			t.Fatalf("gave up waiting for %s; state goroutines:\n%s", what, strings.Join(live, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
