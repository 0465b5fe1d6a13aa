package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// sessionsEnv has a pasted API key and three sessions of agent main: one
// pinned by the user, one pinned automatically, one with a model only.
func sessionsEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:work")
	ms := time.Now().Add(-5 * time.Minute).UnixMilli()
	err := store.New(e.state).UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["chat-1"] = &store.Session{ModelOverride: "anthropic/claude-opus-5", AuthProfileOverride: "anthropic:work",
			AuthProfileOverrideSource: store.PinUser, CreatedAt: ms, UpdatedAt: ms}
		ss.Sessions["default"] = &store.Session{AuthProfileOverride: "anthropic:work", AuthProfileOverrideSource: store.PinAuto, CreatedAt: ms, UpdatedAt: ms}
		ss.Sessions["gone"] = &store.Session{ModelOverride: "openai/gpt-5", AuthProfileOverride: "openai:old", AuthProfileOverrideSource: store.PinUser}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSessionsList(t *testing.T) {
	t.Parallel()
	e := sessionsEnv(t)
	out := e.ok("", "sessions", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SESSION") {
		t.Fatalf("list:\n%s", out)
	}
	for i, want := range [][]string{
		{"chat-1", "anthropic/claude-opus-5", "anthropic:work", "user", "5m ago"},
		{"default", "-", "anthropic:work", "auto"},
		{"gone", "openai/gpt-5", "openai:old", "user", "-"},
	} {
		if got := strings.Fields(lines[i+1]); strings.Join(got[:len(want)], " ") != strings.Join(want, " ") && !strings.HasPrefix(strings.Join(got, " "), strings.Join(want, " ")) {
			t.Errorf("row %d = %q, want %q…", i, lines[i+1], want)
		}
	}

	var j struct {
		Agent, Path string
		Sessions    []sessionRow
	}
	if err := json.Unmarshal([]byte(e.ok("", "sessions", "list", "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if j.Agent != "main" || !strings.HasSuffix(j.Path, "agents/main/sessions.json") || len(j.Sessions) != 3 ||
		j.Sessions[0].ID != "chat-1" || j.Sessions[0].AuthProfileOverrideSource != "user" {
		t.Errorf("json: %+v", j)
	}

	if out := e.ok("", "sessions", "list", "--agent", "cron"); !strings.Contains(out, "Agent cron has no sessions yet") {
		t.Errorf("empty agent: %q", out)
	}
	if out := e.ok("", "sessions", "list", "--agent", "cron", "--json"); !strings.Contains(out, `"sessions": []`) {
		t.Errorf("empty agent json: %q", out)
	}
	e.assertNoSecrets()
}

func TestSessionsShow(t *testing.T) {
	t.Parallel()
	e := sessionsEnv(t)
	out := e.ok("", "sessions", "show", "chat-1")
	for _, want := range []string{"Session:", "chat-1", "Model override:  anthropic/claude-opus-5",
		"anthropic:work (user pin, strict) — anthropic api_key sk-ant-api03-…", "Created:", "5m ago", "Reset it with: opensoul sessions reset chat-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if out := e.ok("", "sessions", "show", "gone"); !strings.Contains(out, "openai:old (user pin, strict) — no such profile any more") {
		t.Errorf("show of a session pinned to a removed profile:\n%s", out)
	}
	var j struct {
		Session sessionRow
		Profile struct {
			ID, Provider, Type, Label string
			Exists                    bool
		}
	}
	if err := json.Unmarshal([]byte(e.ok("", "sessions", "show", "chat-1", "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if j.Session.ModelOverride != "anthropic/claude-opus-5" || !j.Profile.Exists || j.Profile.Provider != "anthropic" || !strings.HasPrefix(j.Profile.Label, "sk-ant-api03-…") {
		t.Errorf("json: %+v", j)
	}
	_, errs, code := e.run("", "sessions", "show", "nope")
	if code != 1 || !strings.Contains(errs, `agent main has no session "nope" (sessions: chat-1, default, gone)`) {
		t.Errorf("unknown session: exit %d, %q", code, errs)
	}
	if _, _, code := e.run("", "sessions", "show"); code != 2 {
		t.Errorf("show without an id: exit %d, want 2", code)
	}
	e.assertNoSecrets()
}

func TestSessionsReset(t *testing.T) {
	t.Parallel()
	e := sessionsEnv(t)
	out := e.ok("", "sessions", "reset", "chat-1")
	if !strings.Contains(out, "Reset session chat-1 of agent main: dropped model override anthropic/claude-opus-5, user pin on anthropic:work.") {
		t.Errorf("reset: %q", out)
	}
	ss, err := store.New(e.state).LoadSessions("main")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ss.Sessions["chat-1"]; ok || len(ss.Sessions) != 2 {
		t.Errorf("after reset: %v", ss.Sessions)
	}
	_, errs, code := e.run("", "sessions", "reset", "chat-1")
	if code != 1 || !strings.Contains(errs, `no session "chat-1"`) {
		t.Errorf("second reset: exit %d, %q", code, errs)
	}
	var j struct {
		Reset []sessionRow
	}
	if err := json.Unmarshal([]byte(e.ok("", "sessions", "reset", "--all", "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Reset) != 2 || j.Reset[0].ID != "default" || j.Reset[1].ID != "gone" {
		t.Errorf("reset --all: %+v", j.Reset)
	}
	if out := e.ok("", "sessions", "reset", "--all"); !strings.Contains(out, "no sessions to reset") {
		t.Errorf("reset --all when empty: %q", out)
	}
	if _, _, code := e.run("", "sessions", "reset", "x", "--all"); code != 2 {
		t.Errorf("id and --all: exit %d, want 2", code)
	}
	e.assertNoSecrets()
}

func TestSessionsHelp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"sessions", "--help"}, {"sessions", "list", "--help"}, {"sessions", "show", "--help"}, {"sessions", "reset", "--help"}} {
		out, _, code := e.run("", args...)
		if code != 0 || !strings.Contains(out, "opensoul sessions") || !strings.Contains(out, "Example") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	if out := e.ok("", "sessions"); !strings.Contains(out, "list") || !strings.Contains(out, "reset") {
		t.Errorf("bare sessions:\n%s", out)
	}
	if _, errs, code := e.run("", "sessions", "lst"); code != 2 || !strings.Contains(errs, `did you mean "list"`) {
		t.Errorf("typo: exit %d, %q", code, errs)
	}
}

// TestSessionsWithRunningGateway: a pin typed in the chat through
// `opensoul gateway` shows in `sessions show`, steers that session's
// requests, and `sessions reset` lifts it from the running gateway.
func TestSessionsWithRunningGateway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const secondKey = "sk-ant-api03-FIXTUREsecondKEYzzzzYYYYxxxxWWWWvvvvUUUUttttSSSSrrrrQQQQppppOOOOnnnnMMMMllllKKKKjjjj9876"
	up := fakeAnthropic(t, nil)
	e.writeFile(".env", envGatewayToken+"="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+up.URL+"\nagents:\n  defaults:\n    models:\n      anthropic/claude-opus-5:\n        alias: opus\n      anthropic/claude-sonnet-5:\n        alias: sonnet\n")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:default", "--force")
	e.ok(secondKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:work", "--force")
	g := startGateway(t, e, "127.0.0.1:0")

	send := func(session, text string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"model": "claude-sonnet-5", "max_tokens": 8,
			"messages": []any{map[string]any{"role": "user", "content": text}}})
		req, _ := http.NewRequest("POST", "http://"+g.addr+"/anthropic/v1/messages", strings.NewReader(string(body)))
		req.Header.Set("x-api-key", fixGatewayToken)
		req.Header.Set("x-opensoul-session", session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d %s", text, resp.StatusCode, data)
		}
		e.seen.Write(data)
		return string(data)
	}
	if out := send("chat-9", "/model opus@anthropic:work"); !strings.Contains(out, "pinned to anthropic:work") {
		t.Fatalf("pin: %s", out)
	}
	if n := len(up.seen()); n != 0 {
		t.Fatalf("the command reached the upstream (%d requests)", n)
	}
	out := e.ok("", "sessions", "show", "chat-9")
	if !strings.Contains(out, "anthropic/claude-opus-5") || !strings.Contains(out, "anthropic:work (user pin, strict)") {
		t.Errorf("show:\n%s", out)
	}
	for range 3 {
		send("chat-9", "hi")
	}
	for i, k := range up.seen() {
		if k != secondKey {
			t.Errorf("request %d of the pinned session used another key", i)
		}
	}

	e.ok("", "sessions", "reset", "chat-9")
	if out := send("chat-9", "/model"); !strings.Contains(out, "as your client asks") {
		t.Errorf("/model after reset: %s", out)
	}
	// Without the pin, round-robin moves to the least recently used key.
	// The gateway notices the reset at its next state poll (200 ms); a
	// request it serves before then still goes to the pinned key and
	// records that key as the session's auto pin, after the reset. So each
	// try resets, gives the poll time to run, then sends one request.
	waitUntil(t, "the gateway to drop the pin", func() bool {
		e.run("", "sessions", "reset", "chat-9") // exit 1 once nothing is left to reset
		time.Sleep(600 * time.Millisecond)
		send("chat-9", "hi")
		seen := up.seen()
		return seen[len(seen)-1] == fixAnthropicKey
	})
	if status := send("chat-9", "/model status"); !strings.Contains(status, "endpoint "+up.URL) || strings.Contains(status, "pinned by you") {
		t.Errorf("status after reset:\n%s", status)
	}
	e.assertNoSecrets()
	if strings.Contains(e.seen.String(), secondKey) {
		t.Error("the second key appeared in output")
	}
}
