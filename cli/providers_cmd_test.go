package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func moduleFixture(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "testdata", "wasm", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// providersEnv has one custom module that works and one that traps.
func providersEnv(t *testing.T) (*env, string, string) {
	e := newEnv(t)
	acme, trap := moduleFixture(t, "acme.wasm"), moduleFixture(t, "bad/trap.wasm")
	e.writeFile("opensoul.yaml", `providers:
  acme:
    baseUrl: https://api.acme.example
    module: `+acme+`
  broken:
    baseUrl: https://broken.example
    module: `+trap+`
`)
	return e, acme, trap
}

func TestProvidersList(t *testing.T) {
	t.Parallel()
	e, acme, trap := providersEnv(t)

	out := e.ok("", "providers", "list")
	for _, want := range []string{
		"NAME", "BASE URL", "MODULE", "ABI", "OPS",
		"anthropic", "https://api.anthropic.com", "builtin", "info,check,headers,classify",
		"acme", "https://api.acme.example", acme, "0.1.0", "info,check,headers",
		"broken", "(failed to load)", trap, "trapped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("providers list lacks %q:\n%s", want, out)
		}
	}

	var rows []providerRow
	if err := json.Unmarshal([]byte(e.ok("", "providers", "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	byName := map[string]providerRow{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	if r := byName["openai"]; r.Module != "builtin" || r.ABIVersion != 1 || r.BaseURL != "https://api.openai.com" || len(r.Ops) != 4 {
		t.Errorf("openai: %+v", r)
	}
	if r := byName["acme"]; r.Module != acme || r.ABIVersion != 1 || strings.Join(r.Ops, ",") != "info,check,headers" {
		t.Errorf("acme: %+v", r)
	}
	if r := byName["broken"]; !strings.Contains(r.Error, trap) || r.ABIVersion != 0 {
		t.Errorf("broken: %+v", r)
	}
	e.assertNoSecrets()
}

func TestProvidersCheck(t *testing.T) {
	t.Parallel()
	e, _, trap := providersEnv(t)
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"setup token", fixSetupToken + "\n", []string{"--provider", "anthropic"}, 0, "valid: anthropic setup_token", ""},
		{"api key", "export ANTHROPIC_API_KEY=" + fixAnthropicKey, []string{"--provider", "anthropic"}, 0, "valid: anthropic api_key", ""},
		{"openai key as anthropic", fixOpenAIKey, []string{"--provider", "anthropic"}, 1, "invalid: looks like an OpenAI key, not an Anthropic credential", ""},
		{"truncated setup token", fixSetupToken[:70], []string{"--provider", "anthropic"}, 1, "line wrap", ""},
		{"openai key", fixOpenAIKey, []string{"--provider", "openai"}, 0, "valid: openai api_key", ""},
		{"openrouter key", fixEnvKey, []string{"--provider", "openrouter", "--type", "api_key"}, 0, "valid: openrouter api_key", ""},
		{"custom module", "acme-42", []string{"--provider", "acme"}, 0, "valid: acme api_key", ""},
		{"custom module rejects", "nope-42", []string{"--provider", "acme"}, 1, "hint: create one at acme.example", ""},
		{"broken module", fixAnthropicKey, []string{"--provider", "broken"}, 1, "", trap},
		{"unknown provider", fixAnthropicKey, []string{"--provider", "anthropik"}, 2, "", `did you mean "anthropic"`},
		{"secret as argument", "", []string{"--provider", "anthropic", fixAnthropicKey}, 2, "", "not from arguments"},
		{"bad type", fixAnthropicKey, []string{"--provider", "anthropic", "--type", "password"}, 2, "", "--type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := e.run(tt.stdin, append([]string{"providers", "check"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
		})
	}

	var v checkVerdict
	out, _, code := e.run(fixOpenAIKey, "providers", "check", "--provider", "anthropic", "--json")
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || v.Valid || v.Kind != "unknown" || !strings.Contains(v.Reason, "OpenAI") {
		t.Errorf("--json: exit %d, %+v %v\n%s", code, v, err, out)
	}
	e.assertNoSecrets()
}
