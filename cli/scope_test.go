package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestScopeShown: a profile scoped to Claude Code (learned from the
// provider's answer, kept in auth-state.json) shows its scope in models
// status (text and --json, with what serves Claude Code's requests),
// policy explain (with and without --client) and doctor, and
// clear-cooldown lifts it.
func TestScopeShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	profiles, _ := json.Marshal(store.Profiles{Version: 1, Profiles: map[string]store.Credential{
		"anthropic:sub": {Type: store.TypeToken, Provider: "anthropic", Token: fixSetupToken},
		"anthropic:key": {Type: store.TypeAPIKey, Provider: "anthropic", Key: fixAnthropicKey},
	}})
	e.writeFile("agents/main/agent/auth-profiles.json", string(profiles))
	state, _ := json.Marshal(store.State{Version: 1, LastGood: map[string]string{}, UsageStats: map[string]*store.UsageStats{
		"anthropic:sub": {Scope: "claude-code", ErrorCount: 1, FailureCounts: map[string]int{"credential_scope": 1}},
	}})
	e.writeFile("agents/main/agent/auth-state.json", string(state))

	out := e.ok("", "models", "status")
	for _, want := range []string{"only for claude-code requests", "claude-code requests: anthropic:sub", "accepts this credential from claude-code only"} {
		if !strings.Contains(out, want) {
			t.Errorf("models status lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		Providers []struct {
			Effective struct{ Serving string } `json:"effective"`
			Profiles  []struct {
				ID    string `json:"id"`
				Scope string `json:"scope"`
				Role  string `json:"role"`
			} `json:"profiles"`
		} `json:"providers"`
		Models []struct {
			Ref        string            `json:"ref"`
			ForClients map[string]string `json:"forClients"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	scoped := false
	for _, p := range rep.Providers[0].Profiles {
		if p.ID == "anthropic:sub" && p.Scope == "claude-code" && p.Role == "unused" {
			scoped = true
		}
	}
	if !scoped || rep.Providers[0].Effective.Serving != "anthropic:key" || rep.Models[0].ForClients["claude-code"] != "anthropic:sub" {
		t.Errorf("models status --json: %+v", rep)
	}

	out = e.ok("", "policy", "explain", "--provider", "anthropic")
	if !strings.Contains(out, "SCOPE") || !strings.Contains(out, "only claude-code") || !strings.Contains(out, "Serves anthropic/claude-sonnet-5: anthropic:key") {
		t.Errorf("policy explain:\n%s", out)
	}
	if out := e.ok("", "policy", "explain", "--provider", "anthropic", "--client", "claude-code/2.1.332"); !strings.Contains(out, "Serves anthropic/claude-sonnet-5: anthropic:sub") || !strings.Contains(out, "client claude-code/2.1.332") {
		t.Errorf("policy explain --client claude-code:\n%s", out)
	}
	if out, _, _ := e.run("", "doctor"); !strings.Contains(out, "serves claude-code requests only") {
		t.Errorf("doctor does not report the scope:\n%s", out)
	}

	e.ok("", "models", "auth", "clear-cooldown", "anthropic:sub")
	if out := e.ok("", "models", "status"); strings.Contains(out, "only for claude-code") || !strings.Contains(out, "anthropic:sub") {
		t.Errorf("clear-cooldown kept the scope:\n%s", out)
	}
	e.assertNoSecrets()
}
