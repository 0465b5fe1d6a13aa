package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnect runs `opensoul connect` on a real state dir and config: the
// recipe takes the listen address, agent and providers from the config,
// --write writes Codex's file under HOME without the token, and no
// output ever holds a secret.
func TestConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile(".env", "OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", `gateway:
  listen: 127.0.0.1:9911
  auth:
    agents:
      batch: `+fixOpenAIKey+`
agents:
  defaults:
    model:
      primary: anthropic/claude-sonnet-5
      fallbacks: [openai/gpt-5.5]
providers:
  openai:
    apiKey: `+fixOpenAIKey+`
`)
	out := e.ok("", "connect", "claude-code")
	for _, want := range []string{"ANTHROPIC_BASE_URL=http://127.0.0.1:9911/anthropic", `ANTHROPIC_AUTH_TOKEN="$OPENSOUL_GATEWAY_TOKEN"`,
		"set -a; . " + filepath.Join(e.state, ".env") + "; set +a"} {
		if !strings.Contains(out, want) {
			t.Errorf("connect claude-code: no %q:\n%s", want, out)
		}
	}

	var js connectOutput
	if err := json.Unmarshal([]byte(e.ok("", "connect", "ai-sdk", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if js.Gateway != "http://127.0.0.1:9911" || len(js.Recipe.Parts) != 2 || !strings.Contains(js.Recipe.Parts[1].Code.Text, "openai('gpt-5.5')") {
		t.Errorf("connect ai-sdk --json: %+v", js)
	}

	// An agent with its own token reads it from OPENSOUL_AGENT_TOKEN and
	// sends its id.
	out = e.ok("", "connect", "codex", "--agent", "batch", "--write")
	conf := read(t, filepath.Join(e.vars["HOME"], ".codex", "config.toml"))
	for _, want := range []string{`env_key = "OPENSOUL_AGENT_TOKEN"`, `base_url = "http://127.0.0.1:9911/openai/v1"`, `"x-opensoul-agent" = "batch"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("written config.toml: no %q:\n%s", want, conf)
		}
	}
	if !strings.Contains(out, "Wrote "+filepath.Join(e.vars["HOME"], ".codex", "config.toml")) {
		t.Errorf("connect --write did not say what it wrote:\n%s", out)
	}
	if out := e.ok("", "connect", "codex", "--agent", "batch", "--write"); !strings.Contains(out, "left unchanged") {
		t.Errorf("second --write:\n%s", out)
	}
	e.seen.WriteString(conf)

	// OpenClaw's file goes where OPENCLAW_CONFIG_PATH says.
	e.vars["OPENCLAW_CONFIG_PATH"] = filepath.Join(e.vars["HOME"], "elsewhere", "oc.json")
	e.ok("", "connect", "openclaw", "--write")
	e.seen.WriteString(read(t, e.vars["OPENCLAW_CONFIG_PATH"]))

	if _, errs, code := e.run("", "connect", "curl", "--agent", "nobody"); code != 0 || !strings.Contains(errs, `agent "nobody" has no token and no profiles yet`) {
		t.Errorf("connect --agent for an unknown agent should warn: exit %d %s", code, errs)
	}
	if _, errs, _ := e.run("", "connect", "curl", "--agent", "batch"); strings.Contains(errs, "no token and no profiles") {
		t.Errorf("an agent with a token is known: %s", errs)
	}
	if _, errs, code := e.run("", "connect", "curl", "--write"); code != 2 || !strings.Contains(errs, "no config file") {
		t.Errorf("connect curl --write: exit %d %s", code, errs)
	}
	if _, errs, code := e.run("", "connect", "claude"); code != 2 || !strings.Contains(errs, `did you mean "claude-code"`) {
		t.Errorf("connect claude: exit %d %s", code, errs)
	}
	if out := e.ok("", "connect"); !strings.Contains(out, "openclaw") || !strings.Contains(out, "langchain") {
		t.Errorf("bare connect should list the clients:\n%s", out)
	}
	if out := e.ok("", "connect", "--help"); !strings.Contains(out, "Examples:") || !strings.Contains(out, "opensoul connect codex --write") {
		t.Errorf("connect --help:\n%s", out)
	}
	e.assertNoSecrets()
}

// TestConnectPrefersConfiguredProviders: the provider the model config
// names serves a client before a built-in one without credentials, and a
// provider nobody uses is left out.
func TestConnectPrefersConfiguredProviders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile("opensoul.yaml", `providers:
  mylocal:
    baseUrl: http://localhost:4000/v1
agents:
  defaults:
    model:
      primary: mylocal/llama-4
`)
	var js connectOutput
	if err := json.Unmarshal([]byte(e.ok("", "connect", "openai-sdk", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if p := js.Recipe.Parts; len(p) != 1 || p[0].Provider != "mylocal" || !strings.Contains(p[0].Code.Text, "baseURL: 'http://127.0.0.1:18789/mylocal'") ||
		!strings.Contains(p[0].Code.Text, "model: 'llama-4'") {
		t.Errorf("openai-sdk with a local provider: %+v", p)
	}
	if out := e.ok("", "connect", "claude-code"); !strings.Contains(out, "no provider in use speaks anthropic-messages") {
		t.Errorf("claude-code without an Anthropic provider in use:\n%s", out)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
