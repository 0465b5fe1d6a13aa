package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway/store"
)

func TestPolicyHelpShowsExamples(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"policy"}, {"policy", "test"}, {"policy", "check"}, {"policy", "explain"}} {
		out, _, code := e.run("", append(args, "--help")...)
		if code != 0 || !strings.Contains(out, "Example") || !strings.Contains(out, "opensoul "+strings.Join(args, " ")) {
			t.Errorf("%v --help: exit %d\n%s", args, code, out)
		}
	}
}

func TestPolicyTestAndCheck(t *testing.T) {
	t.Parallel()
	const rules = "package opensoul.rules\n\ndeny contains {\"profile\": \"anthropic:x\", \"reason\": \"no\"} if input.agent.id == \"cron\"\n"
	tests := []struct {
		name     string
		files    map[string]string // under <state>/policies
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout []string
	}{
		{name: "built-in tests pass", args: []string{"policy", "test"}, stdout: []string{"PASS: "}, noStdout: []string{"FAIL"}},
		{name: "user test passes",
			files: map[string]string{"rules.rego": rules, "rules_test.rego": "package opensoul.rules_test\n\ntest_cron_denies if {\n\tcount(data.opensoul.rules.deny) == 1 with input as {\"agent\": {\"id\": \"cron\"}}\n}\n"},
			args:  []string{"policy", "test", "-v"}, stdout: []string{"test_cron_denies: PASS"}},
		{name: "user test fails",
			files: map[string]string{"rules.rego": rules, "rules_test.rego": "package opensoul.rules_test\n\ntest_main_denies if {\n\tcount(data.opensoul.rules.deny) == 1 with input as {\"agent\": {\"id\": \"main\"}}\n}\n"},
			args:  []string{"policy", "test"}, code: 1, stdout: []string{"test_main_denies: FAIL", "FAIL: 1/"}},
		{name: "check lists files", files: map[string]string{"rules.rego": rules},
			args: []string{"policy", "check"}, stdout: []string{"builtin/select.rego", "rules.rego", "ok: "}},
		{name: "check reports file:line:col", files: map[string]string{"bad.rego": "package opensoul.rules\n\nprefer contains x if {\n\tx := := 1\n}\n"},
			args: []string{"policy", "check"}, code: 1, stderr: []string{"bad.rego:4:7: rego_parse_error"}},
		{name: "removed built-in is named", files: map[string]string{"net.rego": "package opensoul.rules\n\nprefer contains x if {\n\tx := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1\"}).body\n}\n"},
			args: []string{"policy", "test"}, code: 1, stderr: []string{"net.rego:4:", "undefined function http.send", "removed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for name, text := range tt.files {
				e.writeFile(filepath.Join("policies", name), text)
			}
			out, errs, code := e.run("", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.noStdout {
				if strings.Contains(out, w) {
					t.Errorf("stdout has %q:\n%s", w, out)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}
}

func TestPolicyTestTakesDirs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := e.ok("", "policy", "test", filepath.Join("..", "policies", "examples"))
	if !strings.Contains(out, "PASS: ") {
		t.Fatalf("no summary:\n%s", out)
	}
}

func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:key")
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:sub", "--expires-in", "720h")
	cron, err := os.ReadFile(filepath.Join("..", "policies", "examples", "cron_no_api_keys.rego"))
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile("policies/cron_no_api_keys.rego", string(cron))

	out := e.ok("", "policy", "explain", "--provider", "anthropic", "--agent", "cron")
	for _, w := range []string{"Facts", "agent        cron", "anthropic:key", "Decision", "1. anthropic:sub",
		"denied: agent cron never uses metered api_key profiles"} {
		if !strings.Contains(out, w) {
			t.Errorf("explain lacks %q:\n%s", w, out)
		}
	}

	st := store.New(e.state)
	if err := st.UpdateSessions("main", func(s *store.Sessions) error {
		s.Sessions["chat"] = &store.Session{AuthProfileOverride: "anthropic:key", AuthProfileOverrideSource: store.PinUser}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Input struct {
			Agent    struct{ ID string }             `json:"agent"`
			Session  struct{ Pin map[string]string } `json:"session"`
			Profiles []struct{ ID, Status string }   `json:"profiles"`
		} `json:"input"`
		Decision struct {
			Candidates []string          `json:"candidates"`
			Cooling    []string          `json:"cooling"`
			Strict     bool              `json:"strict"`
			Reasons    map[string]string `json:"reasons"`
		} `json:"decision"`
	}
	js := e.ok("", "policy", "explain", "--provider", "anthropic", "--session", "chat", "--model", "claude-opus-5", "--json")
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("--json output: %v\n%s", err, js)
	}
	d := got.Decision
	if got.Input.Agent.ID != "main" || got.Input.Session.Pin["profile"] != "anthropic:key" || !d.Strict ||
		len(d.Candidates) != 1 || d.Candidates[0] != "anthropic:key" || d.Cooling == nil {
		t.Errorf("pinned decision: %s", js)
	}
	// Statuses as the gateway derives them (gateway.ModuleStatus): a
	// module's approval keeps the status from shape and expiry.
	want := map[string]string{"anthropic:key": "static", "anthropic:sub": "ok"}
	for _, p := range got.Input.Profiles {
		if d.Reasons[p.ID] == "" {
			t.Errorf("no reason for %s: %s", p.ID, js)
		}
		if p.Status != want[p.ID] {
			t.Errorf("%s: status %q, want %q", p.ID, p.Status, want[p.ID])
		}
	}

	if _, errs, code := e.run("", "policy", "explain"); code != 2 || !strings.Contains(errs, "--provider is required") {
		t.Errorf("explain without --provider: exit %d, %s", code, errs)
	}
	e.assertNoSecrets()
}
