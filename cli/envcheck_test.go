package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestEnvAndConfigCredentialsChecked: environment and config credentials
// are checked by the provider module like stored ones. One the module
// rejects shows as invalid in models status (text and --json), counts for
// --check, and is skipped for the next one (here the config key).
func TestEnvAndConfigCredentialsChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cut := fixAnthropicKey[:30] // an API key cut off when pasted
	e.vars["ANTHROPIC_API_KEY"] = cut
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    apiKey: "+fixAnthropicKey+"\n")

	out, _, code := e.run("", "models", "status")
	for _, want := range []string{
		"env:ANTHROPIC_API_KEY (process): invalid — too short for an Anthropic API key",
		"(not used)",
		"config:providers.anthropic.apiKey: static (serves: no profile can)",
		"anthropic — config: providers.anthropic.apiKey",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("models status lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("models status exit %d", code)
	}
	if out, _, _ := e.run("", "doctor"); !strings.Contains(out, "[fail] env:ANTHROPIC_API_KEY: invalid: too short") {
		t.Errorf("doctor does not report the rejected environment key:\n%s", out)
	}
	if _, _, code := e.run("", "models", "status", "--check"); code != 1 {
		t.Errorf("models status --check with an invalid env key: exit %d, want 1", code)
	}
	var rep struct {
		Models []struct {
			Serving   string `json:"serving"`
			Fallbacks []struct {
				ID, Status, Reason string
			} `json:"fallbacks"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) == 0 || rep.Models[0].Serving != "config:providers.anthropic.apiKey" || len(rep.Models[0].Fallbacks) != 2 ||
		rep.Models[0].Fallbacks[0].Status != "invalid" || rep.Models[0].Fallbacks[1].Status != "static" {
		t.Errorf("models status --json: %+v", rep.Models)
	}

	// A bad config key is checked too.
	e.vars["ANTHROPIC_API_KEY"] = fixAnthropicKey
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    apiKey: not-an-anthropic-key\n")
	out, _, _ = e.run("", "models", "status")
	if !strings.Contains(out, "config:providers.anthropic.apiKey: invalid — not an Anthropic API key") || !strings.Contains(out, "anthropic — env: ANTHROPIC_API_KEY") {
		t.Errorf("models status with a bad config key:\n%s", out)
	}
	e.assertNoSecrets()
}
