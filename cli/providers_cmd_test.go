package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each command here starts a module host, and a module load under -race
// takes seconds, so the tests run few commands; the modules' own behaviour
// is tested in package wasm.

func moduleFixture(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "testdata", "wasm", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// providersCache is one module cache for these tests, across runs, and
// shared with package wasm's tests: compiled modules are keyed by their
// bytes, and compiling the built-ins cold takes seconds (tens under -race).
// TestProvidersList and TestProvidersCheck are not parallel so that they
// do not compile the same module at the same time; parallel tests (such as
// TestSkippedModuleShownInListAndDoctor) only start after both.
var providersCache = filepath.Join(os.TempDir(), "opensoul-test-cache")

// providersEnv has one custom module that works and one that traps.
func providersEnv(t *testing.T) (*env, string, string) {
	e := newEnv(t)
	e.vars["XDG_CACHE_HOME"] = providersCache
	acme, trap := moduleFixture(t, "acme.wasm"), moduleFixture(t, "bad/trap.wasm")
	e.writeFile("opensoul.yaml", `providers:
  acme:
    baseUrl: https://api.acme.example
    module: `+acme+`
  broken:
    baseUrl: https://broken.example
    module: `+trap+`
  mistral:
    baseUrl: https://api.mistral.ai
`)
	return e, acme, trap
}

func TestProvidersList(t *testing.T) {
	e, acme, trap := providersEnv(t)
	var rows []providerRow
	if err := json.Unmarshal([]byte(e.ok("", "providers", "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	byName := map[string]providerRow{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	for _, name := range []string{"anthropic", "openai", "openrouter", "google"} {
		ops := "info,check,headers,classify,observe"
		if name == "google" {
			ops = "info,check,headers,classify"
		}
		if r := byName[name]; r.Module != "builtin" || r.ABIVersion != 1 || r.Version == "" || r.BaseURL == "" ||
			strings.Join(r.Ops, ",") != ops {
			t.Errorf("%s: %+v", name, r)
		}
	}
	var declared struct{ ClientID string }
	if r := byName["openai"]; json.Unmarshal(r.OAuth, &declared) != nil || declared.ClientID != "app_EMoamEEZ73f0CkXaXp7hrann" {
		t.Errorf("openai's declared OAuth client is not listed: %s", r.OAuth)
	}
	if r := byName["anthropic"]; r.OAuth != nil {
		t.Errorf("anthropic declares an OAuth client: %s", r.OAuth)
	}
	if r := byName["acme"]; r.Module != acme || r.ABIVersion != 1 || r.Version != "0.1.0" || strings.Join(r.Ops, ",") != "info,check,headers" {
		t.Errorf("acme: %+v", r)
	}
	if r := byName["broken"]; !strings.Contains(r.Error, trap) || r.ABIVersion != 0 {
		t.Errorf("broken: %+v", r)
	}
	if r := byName["mistral"]; r.Module != "generic" || r.BaseURL != "https://api.mistral.ai" || len(r.Ops) != 0 {
		t.Errorf("mistral: %+v", r)
	}

	var out bytes.Buffer
	if err := writeProviderTable(&out, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"NAME", "BASE URL", "MODULE", "ABI", "OPS",
		"https://api.anthropic.com", "builtin", "info,check,headers,classify",
		acme, "0.1.0", "(generic: Bearer header, status table)",
		"(failed to load)", "broken: provider broken: module " + trap,
		"openai: the module declares an OAuth sign-in (OpenAI Codex CLI sign-in", "opensoul models auth login --provider openai",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	e.assertNoSecrets()
}

func TestProvidersCheck(t *testing.T) {
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
		{"openai key as anthropic", "export ANTHROPIC_API_KEY=" + fixOpenAIKey, []string{"--provider", "anthropic"}, 1, "invalid: looks like an OpenAI key, not an Anthropic credential", ""},
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
