package chat_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// handlerFixture is the chat handler alone over a temp state dir.
type handlerFixture struct {
	t       *testing.T
	st      *store.Store
	h       *chat.Handler
	refresh []string
}

func newHandler(t *testing.T, cfg chat.Config, env gateway.Env) *handlerFixture {
	t.Helper()
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hf := &handlerFixture{t: t, st: store.New(t.TempDir())}
	hf.h, err = chat.New(chat.Options{
		Store: hf.st, Config: cfg, Selector: engine,
		Env:     func() gateway.Env { return env },
		Refresh: func(agent string) error { hf.refresh = append(hf.refresh, agent); return nil },
		Now:     fixedNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	return hf
}

// do intercepts one request; handled false means it would go upstream.
func (hf *handlerFixture) do(req gateway.ChatRequest) (*httptest.ResponseRecorder, bool) {
	hf.t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/x", nil)
	ok := hf.h.Intercept(w, r, req)
	return w, ok
}

func anthropicReq(session, text string, stream bool) gateway.ChatRequest {
	body, _ := json.Marshal(map[string]any{"model": "claude-sonnet-5", "max_tokens": 10, "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": text}}})
	return gateway.ChatRequest{Agent: "main", Session: session, SessionSet: session != "default", Provider: "anthropic",
		API: "anthropic-messages", Model: "claude-sonnet-5", Stream: stream, Body: body}
}

func openaiReq(session, text string, stream bool) gateway.ChatRequest {
	body, _ := json.Marshal(map[string]any{"model": "gpt-5", "stream": stream,
		"messages": []any{map[string]any{"role": "system", "content": "be brief"}, map[string]any{"role": "user", "content": text}}})
	return gateway.ChatRequest{Agent: "main", Session: session, SessionSet: true, Provider: "openai",
		API: "openai-completions", Model: "gpt-5", Stream: stream, Body: body}
}

// sseEvents reads an SSE body into (event, data) pairs.
func sseEvents(t *testing.T, body string) (names, data []string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			names = append(names, name)
			data = append(data, strings.TrimPrefix(line, "data: "))
			name = ""
		}
	}
	return names, data
}

// TestWireShapes checks the raw answers: status, content type, and the
// event sequence each API's SDK expects.
func TestWireShapes(t *testing.T) {
	t.Parallel()
	hf := newHandler(t, chatConfig("https://a.example", "https://o.example"), nil)

	w, ok := hf.do(anthropicReq("s", "/model", false))
	var msg struct {
		Type, Role, Model string
		Content           []struct{ Type, Text string }
		StopReason        string `json:"stop_reason"`
	}
	if !ok || w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") ||
		json.Unmarshal(w.Body.Bytes(), &msg) != nil || msg.Type != "message" || msg.Role != "assistant" ||
		msg.Model != "claude-sonnet-5" || len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.StopReason != "end_turn" {
		t.Errorf("anthropic json: %d %s", w.Code, w.Body)
	}

	w, _ = hf.do(anthropicReq("s", "/model", true))
	names, _ := sseEvents(t, w.Body.String())
	want := "message_start content_block_start content_block_delta content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != want || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		t.Errorf("anthropic sse events = %q (%s)", got, w.Header().Get("Content-Type"))
	}

	w, _ = hf.do(openaiReq("s", "/model", false))
	var cc struct {
		Object  string
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
	}
	if json.Unmarshal(w.Body.Bytes(), &cc) != nil || cc.Object != "chat.completion" || len(cc.Choices) != 1 ||
		cc.Choices[0].Message.Role != "assistant" || cc.Choices[0].FinishReason != "stop" || cc.Choices[0].Message.Content == "" {
		t.Errorf("openai json: %s", w.Body)
	}

	w, _ = hf.do(openaiReq("s", "/model", true))
	_, data := sseEvents(t, w.Body.String())
	if len(data) < 3 || data[len(data)-1] != "[DONE]" || !strings.Contains(data[0], `"chat.completion.chunk"`) {
		t.Errorf("openai sse: %q", data)
	}
}

// TestNotCommands: ordinary messages, commands inside longer text, an
// assistant prefill after the command, and other APIs pass through.
func TestNotCommands(t *testing.T) {
	t.Parallel()
	hf := newHandler(t, chatConfig("https://a.example", "https://o.example"), nil)
	for _, text := range []string{"hi", "what does /model do?", "/models", "/new chat please", "", "/resetting"} {
		if _, ok := hf.do(anthropicReq("s", text, false)); ok {
			t.Errorf("%q was taken for a command", text)
		}
	}
	prefill := []byte(`{"model":"m","messages":[{"role":"user","content":"/model"},{"role":"assistant","content":"Sure"}]}`)
	if _, ok := hf.do(gateway.ChatRequest{Agent: "main", Session: "s", Provider: "anthropic", API: "anthropic-messages", Body: prefill}); ok {
		t.Error("a conversation ending with an assistant message was taken for a command")
	}
	resp := anthropicReq("s", "/model", false)
	resp.API = "openai-responses"
	if _, ok := hf.do(resp); ok {
		t.Error("a Responses API request was intercepted")
	}
	blocks := []byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>ctx</system-reminder>"},{"type":"image","source":{}},{"type":"text","text":"  /model status\n"}]}]}`)
	if w, ok := hf.do(gateway.ChatRequest{Agent: "main", Session: "s", Provider: "anthropic", API: "anthropic-messages", Body: blocks}); !ok || !strings.Contains(w.Body.String(), "endpoint") {
		t.Errorf("content blocks: last text block not read as a command (handled %v)", ok)
	}
	if len(hf.refresh) != 0 {
		t.Errorf("read-only commands refreshed the gateway: %v", hf.refresh)
	}
}

func textOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var msg struct {
		Content []struct{ Text string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &msg); err != nil || len(msg.Content) != 1 {
		t.Fatalf("answer %d: %s", w.Code, w.Body)
	}
	return msg.Content[0].Text
}

// TestStatusMarks: /model status shows every candidate profile masked and
// marked next, lastGood, cooldown, expires, expired, disabled.
func TestStatusMarks(t *testing.T) {
	t.Parallel()
	env := gateway.Env{"ANTHROPIC_API_KEY": {Name: "ANTHROPIC_API_KEY", Value: envKey, Source: "process"}}
	hf := newHandler(t, chatConfig("https://api.anthropic.example", "https://o.example"), env)
	ms := now.UnixMilli()
	if err := hf.st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["anthropic:sub"] = store.Credential{Type: store.TypeToken, Provider: "anthropic", Token: tokenSub, Expires: ms + 3*time.Hour.Milliseconds()}
		p.Profiles["anthropic:default"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyDefault}
		p.Profiles["anthropic:billing"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyBilling}
		p.Profiles["anthropic:old"] = store.Credential{Type: store.TypeToken, Provider: "anthropic", Token: keyWork, Expires: ms - 1000}
		p.Profiles["anthropic:login"] = store.Credential{Type: store.TypeOAuth, Provider: "anthropic", Access: "eyJhbGciOiJub25lIn0.e30.login-access", Refresh: "login-refresh-token-0123",
			Expires: ms + time.Hour.Milliseconds(), RefreshError: "refresh refused: the provider answered invalid_grant (refresh token reused); sign in again: opensoul models auth login --provider anthropic"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := hf.st.UpdateState("main", func(s *store.State) error {
		s.LastGood["anthropic"] = "anthropic:default"
		s.UsageStats["anthropic:default"] = &store.UsageStats{CooldownUntil: ms + 4*time.Minute.Milliseconds(), ErrorCount: 1}
		s.UsageStats["anthropic:billing"] = &store.UsageStats{DisabledUntil: ms + 5*time.Hour.Milliseconds(), DisabledReason: "billing", ErrorCount: 1}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w, ok := hf.do(anthropicReq("s", "/model status", false))
	if !ok {
		t.Fatal("not handled")
	}
	text := textOf(t, w)
	lines := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	for id, want := range map[string][]string{
		"anthropic:sub":     {"token sk-ant-oat01-…cccc", "next", "expires 3h"},
		"anthropic:default": {"api_key sk-ant-api03-…aaaa", "lastGood", "cooldown 4m"},
		"anthropic:billing": {"api_key sk-ant-api03-…dddd", "disabled: billing (5h)"},
		"anthropic:old":     {"expired"},
		"anthropic:login":   {"expired: refresh refused: the provider answered invalid_grant", "sign in again: opensoul models auth login --provider anthropic"},
		"env":               {"ANTHROPIC_API_KEY (process)", "sk-ant-api03-…ffff", "used when no profile can serve"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[id], w) {
				t.Errorf("%s line %q lacks %q", id, lines[id], w)
			}
		}
	}
	for _, w := range []string{"endpoint https://api.anthropic.example", "Default model: anthropic/claude-sonnet-5; fallbacks: anthropic/claude-haiku-5",
		"Auth file: " + hf.st.ProfilesPath("main"), "agent main"} {
		if !strings.Contains(text, w) {
			t.Errorf("status lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(lines["anthropic:default"], "next") {
		t.Errorf("a cooling profile is marked next: %s", lines["anthropic:default"])
	}
	noSecrets(t, "status", text)
	if strings.Contains(text, "login-refresh-token") || strings.Contains(text, "login-access") {
		t.Error("status shows the dead login's tokens")
	}
	t.Log("\n" + text)

	// The list says which providers have a credential.
	list := textOf(t, must(hf.do(anthropicReq("s", "/model list", false))))
	if !strings.Contains(list, "anthropic — credential: anthropic:billing, anthropic:default, anthropic:sub, env ANTHROPIC_API_KEY") ||
		!strings.Contains(list, "openai — no credential (add one: `opensoul models auth paste-token --provider openai`)") {
		t.Errorf("list:\n%s", list)
	}
	noSecrets(t, "list", list)
	t.Log("\n" + list)
}

func must(w *httptest.ResponseRecorder, ok bool) *httptest.ResponseRecorder {
	if !ok {
		panic("not handled")
	}
	return w
}

// TestAnyModelWithoutList: with agents.defaults.models empty any
// provider/model of a configured provider is accepted; bare names are
// not, unless they are the default or a fallback.
func TestAnyModelWithoutList(t *testing.T) {
	t.Parallel()
	cfg := chatConfig("https://a.example", "https://o.example")
	cfg.Models = nil
	hf := newHandler(t, cfg, nil)
	cases := []struct{ text, want, model string }{
		{"/model anthropic/claude-next-9", "Model for session", "anthropic/claude-next-9"},
		{"/model claude-haiku-5", "Model for session", "anthropic/claude-haiku-5"},
		{"/model mystery", "Give it as provider/model", ""},
		{"/model acme/x", `Unknown provider "acme"`, ""},
		{"/model openai/gpt-9", "served by openai", ""},
	}
	for _, tc := range cases {
		hf.do(anthropicReq("s", "/reset", false))
		text := textOf(t, must(hf.do(anthropicReq("s", tc.text, false))))
		if !strings.Contains(text, tc.want) {
			t.Errorf("%q: answer lacks %q:\n%s", tc.text, tc.want, text)
		}
		ss, _ := hf.st.LoadSessions("main")
		got := ""
		if s := ss.Sessions["s"]; s != nil {
			got = s.ModelOverride
		}
		if got != tc.model {
			t.Errorf("%q: override %q, want %q", tc.text, got, tc.model)
		}
	}
	list := textOf(t, must(hf.do(anthropicReq("s", "/model list", false))))
	if !strings.Contains(list, "Any provider/model is accepted") || !strings.Contains(list, "anthropic/claude-sonnet-5  default") {
		t.Errorf("list:\n%s", list)
	}
}

// TestProfileWithAtInID: OAuth profile ids carry an e-mail, so the @ that
// splits model and profile is the one before a known profile id.
func TestProfileWithAtInID(t *testing.T) {
	t.Parallel()
	hf := newHandler(t, chatConfig("https://a.example", "https://o.example"), nil)
	if err := hf.st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["anthropic:me@example.com"] = store.Credential{Type: store.TypeOAuth, Provider: "anthropic", Access: tokenSub, Refresh: "r-SECRET-refresh-0000000000", Expires: now.Add(time.Hour).UnixMilli(), Email: "me@example.com"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	text := textOf(t, must(hf.do(anthropicReq("s", "/model opus @anthropic:me@example.com", false))))
	ss, _ := hf.st.LoadSessions("main")
	if s := ss.Sessions["s"]; s == nil || s.AuthProfileOverride != "anthropic:me@example.com" || s.ModelOverride != "anthropic/claude-opus-5" {
		t.Fatalf("session %+v; answer:\n%s", ss.Sessions["s"], text)
	}
	if len(hf.refresh) == 0 || hf.refresh[len(hf.refresh)-1] != "main" {
		t.Errorf("gateway not refreshed after the change: %v", hf.refresh)
	}
	if strings.Contains(text, "r-SECRET-refresh") || strings.Contains(text, tokenSub) {
		t.Errorf("answer shows a secret:\n%s", text)
	}
}

// TestStoreFailure: a sessions.json that cannot be parsed gets an error
// in the API's shape, and the file is left alone.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	hf := newHandler(t, chatConfig("https://a.example", "https://o.example"), nil)
	if err := hf.st.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	path := hf.st.SessionsPath("main")
	if err := store.WriteFileAtomic(path, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	w, ok := hf.do(openaiReq("s", "/model gpt", false))
	var e struct {
		Error struct{ Message, Type string }
	}
	if !ok || w.Code != http.StatusInternalServerError || json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e.Error.Message, "sessions.json") {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}

// TestOpenRouterModels: through a provider whose model ids are
// vendor/model, "/model vendor/model" names one of its models.
func TestOpenRouterModels(t *testing.T) {
	t.Parallel()
	cfg := chatConfig("https://a.example", "https://o.example")
	cfg.Models = nil
	cfg.Providers["openrouter"] = chat.Provider{BaseURL: "https://openrouter.example/api"}
	hf := newHandler(t, cfg, nil)
	req := func(text string) gateway.ChatRequest {
		r := openaiReq("s", text, false)
		r.Provider, r.Model = "openrouter", "meta-llama/llama-4"
		return r
	}
	for text, want := range map[string]string{
		"/model anthropic/claude-sonnet-5":             "openrouter/anthropic/claude-sonnet-5",
		"/model openrouter/google/gemini-3":            "openrouter/google/gemini-3",
		"/model anthropic/claude-sonnet-5@openai:none": "",
	} {
		w := must(hf.do(req(text)))
		var cc struct {
			Choices []struct{ Message struct{ Content string } }
		}
		json.Unmarshal(w.Body.Bytes(), &cc)
		ss, _ := hf.st.LoadSessions("main")
		got := ""
		if s := ss.Sessions["s"]; s != nil {
			got = s.ModelOverride
		}
		if want != "" && got != want {
			t.Errorf("%q: override %q, want %q (%s)", text, got, want, cc.Choices[0].Message.Content)
		}
		if want == "" && !strings.Contains(cc.Choices[0].Message.Content, `Unknown profile "openai:none"`) {
			t.Errorf("%q: %s", text, cc.Choices[0].Message.Content)
		}
	}
	w := must(hf.do(req("/model")))
	if body := w.Body.String(); strings.Contains(body, "openrouter/openrouter/") || !strings.Contains(body, ", session override") {
		t.Errorf("/model: %s", w.Body)
	}
}

// TestStatusScope: /model status answers for the client that asks. A
// token scoped to Claude Code is next for Claude Code and marked, and for
// another client the next profile is the key.
func TestStatusScope(t *testing.T) {
	t.Parallel()
	hf := newHandler(t, chatConfig("https://api.anthropic.example", "https://o.example"), gateway.Env{})
	if err := hf.st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["anthropic:sub"] = store.Credential{Type: store.TypeToken, Provider: "anthropic", Token: tokenSub}
		p.Profiles["anthropic:default"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyDefault}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := hf.st.UpdateState("main", func(s *store.State) error {
		s.UsageStats["anthropic:sub"] = &store.UsageStats{Scope: "claude-code"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	line := func(client, id string) string {
		req := anthropicReq("s", "/model status", false)
		req.Client.Name = client
		for _, l := range strings.Split(textOf(t, must(hf.do(req))), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				return l
			}
		}
		return ""
	}
	if l := line("claude-code", "anthropic:sub"); !strings.Contains(l, "next") || !strings.Contains(l, "only for claude-code requests") {
		t.Errorf("Claude Code's /model status: anthropic:sub line %q", l)
	}
	if l := line("codex", "anthropic:sub"); strings.Contains(l, "next") || !strings.Contains(l, "only for claude-code requests") {
		t.Errorf("Codex's /model status: anthropic:sub line %q", l)
	}
	if l := line("codex", "anthropic:default"); !strings.Contains(l, "next") {
		t.Errorf("Codex's /model status: anthropic:default line %q", l)
	}
}

// TestBuiltinAliases: the provider table's aliases (sonnet, opus, haiku,
// gpt, …) resolve where the configured models allow: without a list, to
// the default or fallback of the family, else the table's model; with a
// list, only to a listed model of the family; a configured alias wins.
func TestBuiltinAliases(t *testing.T) {
	t.Parallel()
	open := chatConfig("https://a.example", "https://o.example")
	open.Models = nil
	open.DefaultModel = "anthropic/claude-sonnet-5-20261001" // a dated id of the family
	listed := chatConfig("https://a.example", "https://o.example")
	listed.Models = map[string]string{
		"anthropic/claude-opus-5":  "big", // configured alias; opus still names it (the only listed opus)
		"anthropic/claude-haiku-5": "",
		"openai/gpt-5":             "",
		"openai/gpt-5-mini":        "",
	}
	custom := chatConfig("https://a.example", "https://o.example")
	custom.Models = map[string]string{"anthropic/claude-haiku-5": "sonnet"} // the user's alias takes the word
	cases := []struct {
		name      string
		cfg       chat.Config
		text      string
		want      string
		override  string
		wantRoute bool // the model is served on another route: nothing set
	}{
		{"no list: the default of the family", open, "/model sonnet", "Model for session", "anthropic/claude-sonnet-5-20261001", false},
		{"no list: the fallback of the family", open, "/model haiku", "Model for session", "anthropic/claude-haiku-5", false},
		{"no list: the table's model", open, "/model Opus", "Model for session", "anthropic/claude-opus-5", false},
		{"no list: another provider's alias", open, "/model gpt", "served by openai", "", true},
		{"no list: unknown word lists the aliases", open, "/model sonet", "built-in alias (sonnet, opus, haiku", "", false},
		{"list: the only listed opus", listed, "/model opus", "Model for session", "anthropic/claude-opus-5", false},
		{"list: the table's model among several", listed, "/model gpt", "served by openai", "", true},
		{"list: a family not listed is refused", listed, "/model sonnet", "accepts only the models in agents.defaults.models", "", false},
		{"configured alias wins", custom, "/model sonnet", "Model for session", "anthropic/claude-haiku-5", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hf := newHandler(t, tc.cfg, nil)
			text := textOf(t, must(hf.do(anthropicReq("s", tc.text, false))))
			if !strings.Contains(text, tc.want) {
				t.Errorf("%q: answer lacks %q:\n%s", tc.text, tc.want, text)
			}
			if tc.wantRoute && !strings.Contains(text, "openai/gpt-5") {
				t.Errorf("%q: the answer should name openai/gpt-5:\n%s", tc.text, text)
			}
			ss, _ := hf.st.LoadSessions("main")
			got := ""
			if s := ss.Sessions["s"]; s != nil {
				got = s.ModelOverride
			}
			if got != tc.override {
				t.Errorf("%q: override %q, want %q", tc.text, got, tc.override)
			}
		})
	}
}
