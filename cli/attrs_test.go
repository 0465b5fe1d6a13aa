package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAgentAttrs: agents.<id>.attrs reach the policy as input.agent.attrs
// (explain shows them), sit beside agents.default and agents.defaults, and
// a key that is not an agent id is refused with its name.
func TestAgentAttrs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile("opensoul.yaml", `agents:
  default: main
  cron:
    attrs: {purpose: batch, team: infra}
  main:
    attrs:
      purpose: interactive
`)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:key")
	var got struct {
		Input struct {
			Agent struct {
				ID    string            `json:"id"`
				Attrs map[string]string `json:"attrs"`
			} `json:"agent"`
		} `json:"input"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "policy", "explain", "--provider", "anthropic", "--agent", "cron", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Input.Agent.ID != "cron" || got.Input.Agent.Attrs["purpose"] != "batch" || got.Input.Agent.Attrs["team"] != "infra" || len(got.Input.Agent.Attrs) != 2 {
		t.Errorf("input.agent = %+v, want cron with purpose=batch, team=infra", got.Input.Agent)
	}
	if out := e.ok("", "policy", "explain", "--provider", "anthropic"); !strings.Contains(out, "main (purpose=interactive)") {
		t.Errorf("explain does not show the default agent's attrs:\n%s", out)
	}
	if out := e.ok("", "config", "show"); !strings.Contains(out, "cron") || strings.Contains(out, "remain") {
		t.Errorf("config show should list agents.cron, without mapping artefacts:\n%s", out)
	}

	for yaml, want := range map[string]string{
		"agents:\n  cron:\n    atrs: {purpose: batch}\n":  `opensoul.yaml:3:5: agents.cron.atrs: unknown key (did you mean "agents.cron.attrs"?)`,
		"agents:\n  \"bad id!\":\n    attrs: {a: b}\n":    "agents.bad id!: not an agent id",
		"agents:\n  cron:\n    attrs: {budget: [1, 2]}\n": "agents.cron.attrs.budget: expected a string",
	} {
		e.writeFile("opensoul.yaml", yaml)
		if _, errs, code := e.run("", "config", "validate"); code == 0 || !strings.Contains(errs, want) {
			t.Errorf("config validate of %q: exit %d, want an error containing %q:\n%s", yaml, code, want, errs)
		}
	}
}
