package chat_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
)

// reply is what a client got back for one message.
type reply struct {
	text    string
	model   string
	header  http.Header
	profile string // x-opensoul-profile
}

// ask sends text as the user's message through the official SDK of api
// ("anthropic", "openai" for Chat Completions or "responses" for OpenAI's
// Responses API), streaming or not, in session (none if "").
func (f *fixture) ask(api string, stream bool, session, text string) reply {
	f.t.Helper()
	ctx := context.Background()
	var resp *http.Response
	var r reply
	switch api {
	case "anthropic":
		opts := []aoption.RequestOption{
			aoption.WithBaseURL(f.srv.URL + "/anthropic"), aoption.WithAPIKey(gatewayToken),
			aoption.WithMaxRetries(0), aoption.WithResponseInto(&resp),
		}
		if session != "" {
			opts = append(opts, aoption.WithHeader("x-opensoul-session", session))
		}
		client := anthropic.NewClient(opts...)
		params := anthropic.MessageNewParams{
			Model: "claude-sonnet-5", MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))},
		}
		var msg anthropic.Message
		if stream {
			s := client.Messages.NewStreaming(ctx, params)
			for s.Next() {
				if err := msg.Accumulate(s.Current()); err != nil {
					f.t.Fatalf("%q: accumulate: %v", text, err)
				}
			}
			if err := s.Err(); err != nil {
				f.t.Fatalf("%q (anthropic stream): %v", text, err)
			}
		} else {
			m, err := client.Messages.New(ctx, params)
			if err != nil {
				f.t.Fatalf("%q (anthropic): %v", text, err)
			}
			msg = *m
		}
		for _, b := range msg.Content {
			r.text += b.Text
		}
		r.model = msg.Model
	case "openai":
		client := openai.NewClient(f.openaiOptions(session, &resp)...)
		params := openai.ChatCompletionNewParams{
			Model:    "gpt-5",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
		}
		if stream {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			s := client.Chat.Completions.NewStreaming(ctx, params)
			acc := openai.ChatCompletionAccumulator{}
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if err := s.Err(); err != nil {
				f.t.Fatalf("%q (openai stream): %v", text, err)
			}
			if len(acc.Choices) != 1 {
				f.t.Fatalf("%q (openai stream): %d choices", text, len(acc.Choices))
			}
			r.text, r.model = acc.Choices[0].Message.Content, acc.Model
		} else {
			cc, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				f.t.Fatalf("%q (openai): %v", text, err)
			}
			r.text, r.model = cc.Choices[0].Message.Content, cc.Model
		}
	case "responses":
		client := openai.NewClient(f.openaiOptions(session, &resp)...)
		// The typed text as the last of several input items, the way chat
		// clients send a conversation.
		params := responses.ResponseNewParams{
			Model: "gpt-5",
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMessage("be brief", responses.EasyInputMessageRoleDeveloper),
				responses.ResponseInputItemParamOfMessage(text, responses.EasyInputMessageRoleUser),
			}},
		}
		if stream {
			s := client.Responses.NewStreaming(ctx, params)
			var deltas string
			var done responses.Response
			for s.Next() {
				switch ev := s.Current(); ev.Type {
				case "response.output_text.delta":
					deltas += ev.Delta
				case "response.completed":
					done = ev.Response
				}
			}
			if err := s.Err(); err != nil {
				f.t.Fatalf("%q (responses stream): %v", text, err)
			}
			if deltas != done.OutputText() || done.Status != responses.ResponseStatusCompleted {
				f.t.Fatalf("%q (responses stream): deltas %q, completed response %q (%s)", text, deltas, done.OutputText(), done.Status)
			}
			r.text, r.model = deltas, string(done.Model)
		} else {
			rr, err := client.Responses.New(ctx, params)
			if err != nil {
				f.t.Fatalf("%q (responses): %v", text, err)
			}
			r.text, r.model = rr.OutputText(), string(rr.Model)
		}
	}
	r.header = resp.Header
	r.profile = resp.Header.Get("x-opensoul-profile")
	return r
}

// openaiOptions point openai-go at the gateway's /openai route, in session
// (none if ""), recording the HTTP response into resp.
func (f *fixture) openaiOptions(session string, resp **http.Response) []ooption.RequestOption {
	opts := []ooption.RequestOption{
		ooption.WithBaseURL(f.srv.URL + "/openai/v1"), ooption.WithAPIKey(gatewayToken),
		ooption.WithMaxRetries(0), ooption.WithResponseInto(resp),
	}
	if session != "" {
		opts = append(opts, ooption.WithHeader("x-opensoul-session", session))
	}
	return opts
}

// TestCommandsThroughSDKs types every command into both APIs, streaming
// and not, through the official SDKs and the real gateway: each is
// answered by the gateway, changes the session as documented, and no
// upstream ever sees a request.
func TestCommandsThroughSDKs(t *testing.T) {
	f := newFixture(t)
	type step struct {
		text string
		want []string // substrings of the answer
		then func(t *testing.T, s store.Session)
	}
	pinned := func(model, profile string) func(*testing.T, store.Session) {
		return func(t *testing.T, s store.Session) {
			if s.ModelOverride != model || s.AuthProfileOverride != profile || (profile != "" && s.AuthProfileOverrideSource != store.PinUser) {
				t.Errorf("session = %+v, want model %q pinned to %q by the user", s, model, profile)
			}
		}
	}
	gone := func(t *testing.T, s store.Session) {
		if s != (store.Session{}) {
			t.Errorf("session still has %+v", s)
		}
	}
	cleared := func(t *testing.T, s store.Session) {
		if s.ModelOverride != "" || s.AuthProfileOverride != "" || s.AuthProfileOverrideSource != "" || s.CreatedAt == 0 {
			t.Errorf("session = %+v, want overrides cleared", s)
		}
	}
	steps := map[string][]step{
		"anthropic": {
			{text: "/model", want: []string{`Session "`, "Model: anthropic/claude-sonnet-5", "Credential: anthropic:default", "/model sonnet@<profile>"}},
			{text: "/model list", want: []string{"anthropic — credential: anthropic:default, anthropic:work  ← this chat", "opus", "anthropic/claude-opus-5", "openai — credential: openai:main", "gpt"}},
			{text: "/model status", want: []string{"anthropic · endpoint " + f.anthropic.URL, "anthropic:default", "sk-ant-api03-…aaaa", "next", "Auth file: " + f.st.ProfilesPath("main")}},
			{text: "/model opus", want: []string{"anthropic/claude-opus-5 (opus)", "chosen by the policy", "/model opus@<profile> (anthropic:default, anthropic:work)"}, then: pinned("anthropic/claude-opus-5", "")},
			{text: "/model sonnet@anthropic:work", want: []string{"pinned to anthropic:work", "sk-ant-api03-…bbbb", "strict"}, then: pinned("anthropic/claude-sonnet-5", "anthropic:work")},
			{text: "/model", want: []string{"session override", "anthropic:work", "pinned by you"}},
			{text: "/model status", want: []string{"next, pinned by you"}},
			{text: "/model default", want: []string{"Back to defaults", "pin on anthropic:work removed"}, then: cleared},
			{text: "/model opus@anthropic:work", then: pinned("anthropic/claude-opus-5", "anthropic:work")},
			{text: "/new", want: []string{"New session", "Dropped: model override anthropic/claude-opus-5, your pin on anthropic:work"}, then: gone},
			{text: "/model haiku-nope", want: []string{`Unknown model "haiku-nope"`, "sonnet (anthropic/claude-sonnet-5)"}, then: gone},
			{text: "/model sonnet@anthropic:nope", want: []string{`Unknown profile "anthropic:nope"`, "anthropic:default, anthropic:work"}, then: gone},
			{text: "/model sonnet@openai:main", want: []string{"Profile openai:main is an openai credential"}, then: gone},
			{text: "/model @anthropic:work", want: []string{"Name a model before the @"}, then: gone},
			{text: "/model gpt", want: []string{"served by openai", "/anthropic route"}, then: gone},
			{text: "/model claude-opus-5", want: []string{"anthropic/claude-opus-5 (opus)"}, then: pinned("anthropic/claude-opus-5", "")},
			{text: "/reset", want: []string{"New session"}, then: gone},
			{text: "/model what is this", want: []string{"I don't know the command", "/model list"}},
		},
		"openai": {
			{text: "/model", want: []string{"Model: openai/gpt-5", "Credential: openai:main"}},
			{text: "/model list", want: []string{"openai — credential: openai:main  ← this chat"}},
			{text: "/model status", want: []string{"openai · endpoint " + f.openai.URL, "sk-proj-…eeee", "next"}},
			{text: "/model gpt@openai:main", want: []string{"pinned to openai:main"}, then: pinned("openai/gpt-5", "openai:main")},
			{text: "/model default", want: []string{"Back to defaults"}, then: cleared},
			{text: "/model opus", want: []string{"served by anthropic", "/openai route", "gpt (openai/gpt-5)"}, then: cleared},
			{text: "/new", want: []string{"New session"}, then: gone},
			{text: "/model gpt@anthropic:work", want: []string{"is an anthropic credential"}, then: gone},
			{text: "/reset", want: []string{"New session"}, then: gone},
		},
	}
	steps["responses"] = steps["openai"]
	for _, api := range []string{"anthropic", "openai", "responses"} {
		for _, stream := range []bool{false, true} {
			name := api + map[bool]string{false: "/json", true: "/sse"}[stream]
			t.Run(name, func(t *testing.T) {
				session := "cmd-" + strings.ReplaceAll(name, "/", "-")
				for _, st := range steps[api] {
					r := f.ask(api, stream, session, st.text)
					if r.header.Get(chat.HeaderCommand) != "command" || r.profile != "chat" {
						t.Errorf("%q: not answered by the gateway (headers %v)", st.text, r.header)
					}
					for _, w := range st.want {
						if !strings.Contains(r.text, w) {
							t.Errorf("%q: answer lacks %q:\n%s", st.text, w, r.text)
						}
					}
					noSecrets(t, st.text, r.text)
					if st.then != nil {
						st.then(t, f.session(session))
					}
				}
			})
		}
	}
	if n := f.upstreamCount(); n != 0 {
		t.Errorf("upstreams saw %d requests for commands; want none", n)
	}
	noSecrets(t, "gateway log", f.logs.String())
}

// TestPinSteersSession: a pin set by chat steers the next real request in
// that session (model rewritten, pinned credential, never rotated), not
// another session's, and survives a gateway restart.
func TestPinSteersSession(t *testing.T) {
	f := newFixture(t)
	r := f.ask("anthropic", true, "s1", "/model opus@anthropic:work")
	if !strings.Contains(r.text, "pinned to anthropic:work") {
		t.Fatalf("pin refused: %s", r.text)
	}

	last := func() seen {
		reqs := f.anthropic.requests()
		if len(reqs) == 0 {
			t.Fatal("upstream saw nothing")
		}
		return reqs[len(reqs)-1]
	}
	r = f.ask("anthropic", false, "s1", "hi")
	if r.text != "hello" || r.profile != "anthropic:work" {
		t.Fatalf("s1: got %q from %q", r.text, r.profile)
	}
	if got := last(); got.secret != keyWork || got.model != "claude-opus-5" {
		t.Errorf("s1: upstream saw model %q with the %s key", got.model, which(got.secret))
	}

	// Another session: no override; round-robin picks the least recently
	// used profile, which is now anthropic:default.
	r = f.ask("anthropic", false, "s2", "hi")
	if got := last(); got.model != "claude-sonnet-5" || got.secret != keyDefault || r.profile != "anthropic:default" {
		t.Errorf("s2: upstream saw model %q with the %s key (profile %q)", got.model, which(got.secret), r.profile)
	}
	// s1 again: the strict pin holds although work is now the most
	// recently used.
	f.ask("anthropic", false, "s1", "hi")
	if got := last(); got.secret != keyWork || got.model != "claude-opus-5" {
		t.Errorf("s1 again: upstream saw model %q with the %s key", got.model, which(got.secret))
	}

	f.restart()
	if s := f.session("s1"); s.AuthProfileOverride != "anthropic:work" || s.AuthProfileOverrideSource != store.PinUser || s.ModelOverride != "anthropic/claude-opus-5" {
		t.Fatalf("sessions.json after restart: %+v", s)
	}
	r = f.ask("anthropic", false, "s1", "hi")
	if got := last(); got.secret != keyWork || got.model != "claude-opus-5" || r.profile != "anthropic:work" {
		t.Errorf("after restart: upstream saw model %q with the %s key", got.model, which(got.secret))
	}
	r = f.ask("anthropic", false, "s1", "/model status")
	if !strings.Contains(r.text, "pinned by you") || !strings.Contains(r.text, "lastGood") {
		t.Errorf("status after restart:\n%s", r.text)
	}

	// /model default hands the session back to the policy: the next
	// request may use another profile, with the client's model.
	f.ask("anthropic", false, "s1", "/model default")
	n := len(f.anthropic.requests())
	f.ask("anthropic", false, "s1", "hi")
	if got := last(); got.model != "claude-sonnet-5" || len(f.anthropic.requests()) != n+1 {
		t.Errorf("after /model default: upstream saw model %q", got.model)
	}
	noSecrets(t, "gateway log", f.logs.String())
}

// TestAutoPinShownAndReset: the first profile that succeeds becomes the
// session's auto pin; /model shows it and /new drops it.
func TestAutoPinShownAndReset(t *testing.T) {
	f := newFixture(t)
	r := f.ask("openai", false, "s3", "hi")
	if r.profile != "openai:main" {
		t.Fatalf("served by %q", r.profile)
	}
	waitFor(t, "the auto pin on disk", func() bool { return f.session("s3").AuthProfileOverrideSource == store.PinAuto })
	r = f.ask("openai", false, "s3", "/model")
	if !strings.Contains(r.text, "openai:main") || !strings.Contains(r.text, "kept while it works") {
		t.Errorf("/model does not show the auto pin:\n%s", r.text)
	}
	r = f.ask("openai", true, "s3", "/reset")
	if !strings.Contains(r.text, "automatic pin on openai:main") {
		t.Errorf("/reset answer:\n%s", r.text)
	}
	if s := f.session("s3"); s != (store.Session{}) {
		t.Errorf("session after /reset: %+v", s)
	}
}

// TestDefaultSessionNote: a client that names no session is told that its
// commands apply to the agent's shared default session.
func TestDefaultSessionNote(t *testing.T) {
	f := newFixture(t)
	r := f.ask("anthropic", false, "", "/model opus")
	if !strings.Contains(r.text, "no x-opensoul-session header") || !strings.Contains(r.text, `session "default"`) {
		t.Errorf("answer:\n%s", r.text)
	}
	if s := f.session("default"); s.ModelOverride != "anthropic/claude-opus-5" {
		t.Errorf("default session: %+v", s)
	}
}

func which(secret string) string {
	switch secret {
	case keyDefault:
		return "anthropic:default"
	case keyWork:
		return "anthropic:work"
	case openaiKey:
		return "openai:main"
	case "":
		return "(none)"
	}
	return "other"
}

// TestAgentsKeepTheirOwnSessions: a command for agent work changes work's
// sessions.json only, and its status names the profiles it inherits.
func TestAgentsKeepTheirOwnSessions(t *testing.T) {
	f := newFixture(t)
	// An agent exists once it has a directory (the gateway refuses names
	// that are neither configured nor on disk).
	if err := os.MkdirAll(f.st.AgentDir("work"), 0o700); err != nil {
		t.Fatal(err)
	}
	post := func(agent, text string) string {
		t.Helper()
		body := `{"model":"claude-sonnet-5","max_tokens":8,"messages":[{"role":"user","content":"` + text + `"}]}`
		req, _ := http.NewRequest("POST", f.srv.URL+"/anthropic/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", gatewayToken)
		req.Header.Set("x-opensoul-agent", agent)
		req.Header.Set("x-opensoul-session", "s")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var msg struct{ Content []struct{ Text string } }
		if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil || len(msg.Content) != 1 {
			t.Fatalf("%s %q: %d %v", agent, text, resp.StatusCode, err)
		}
		return msg.Content[0].Text
	}
	if out := post("work", "/model opus@anthropic:work"); !strings.Contains(out, `session "s" (agent work)`) {
		t.Errorf("work: %s", out)
	}
	work, _ := f.st.LoadSessions("work")
	main, _ := f.st.LoadSessions("main")
	if s := work.Sessions["s"]; s == nil || s.AuthProfileOverride != "anthropic:work" || len(main.Sessions) != 0 {
		t.Errorf("work sessions %v, main sessions %v", work.Sessions, main.Sessions)
	}
	status := post("work", "/model status")
	if !strings.Contains(status, "anthropic:work (from agent main)") || !strings.Contains(status, "Base profiles (agent main): "+f.st.ProfilesPath("main")) {
		t.Errorf("work status:\n%s", status)
	}
	if out := post("main", "/model"); !strings.Contains(out, "no override") {
		t.Errorf("main after work's pin:\n%s", out)
	}
	if n := f.upstreamCount(); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}
