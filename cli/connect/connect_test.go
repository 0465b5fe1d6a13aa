package connect

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	providers "github.com/opensoul/opensoul/gateway/provider"
)

var update = flag.Bool("update", false, "rewrite the golden recipes in testdata/")

const gw = "http://127.0.0.1:18789"

// route builds a Route the way `opensoul connect` does: paths and APIs
// from the provider table.
func route(name string, models ...string) Route { return routeAt(gw, name, models...) }

func routeAt(gateway, name string, models ...string) Route {
	p := providers.For(name)
	return Route{Provider: name, Root: gateway + "/" + name, API: gateway + "/" + name + p.APIPrefix, APIs: p.APIs, Models: models}
}

// scenarios are the setups every client's recipe is pinned for.
var scenarios = []struct {
	name  string
	setup Setup
}{
	{"default", Setup{Gateway: gw, TokenVar: "OPENSOUL_GATEWAY_TOKEN", TokenFrom: "set -a; . /home/u/.opensoul/.env; set +a    # sets OPENSOUL_GATEWAY_TOKEN",
		Routes: []Route{route("anthropic", "claude-sonnet-5"), route("openai", "gpt-5.5")}}},
	{"agent", Setup{Gateway: gw, Agent: "research", TokenVar: "OPENSOUL_AGENT_TOKEN", TokenFrom: "export OPENSOUL_AGENT_TOKEN='…'",
		Routes: []Route{route("anthropic", "claude-sonnet-5", "claude-haiku-5"), route("openai")}}},
	{"openai-only", Setup{Gateway: "http://127.0.0.1:9000", TokenVar: "OPENSOUL_GATEWAY_TOKEN", TokenFrom: "OPENSOUL_GATEWAY_TOKEN is already set in this shell",
		Routes: []Route{routeAt("http://127.0.0.1:9000", "openai", "gpt-5.5")}}},
}

// TestGoldenRecipes pins every client's printed recipe and its JSON for
// each scenario (go test ./cli/connect -update rewrites them).
func TestGoldenRecipes(t *testing.T) {
	for _, sc := range scenarios {
		for _, client := range Clients() {
			t.Run(sc.name+"/"+client, func(t *testing.T) {
				rec, err := Build(client, sc.setup)
				if err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				rec.Text(&b, sc.setup)
				js, err := json.MarshalIndent(rec, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				b.WriteString("\n---- json ----\n")
				b.Write(js)
				b.WriteString("\n")
				golden(t, filepath.Join("testdata", sc.name, client+".txt"), b.Bytes())
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli/connect -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./cli/connect -update to accept):\n--- got\n%s", path, got)
	}
}

// TestRecipeFacts checks, beside the golden files, the facts the issue
// names: the base URL each client needs, the token variable, the Codex
// provider block and the OpenClaw entry.
func TestRecipeFacts(t *testing.T) {
	t.Parallel()
	s := scenarios[0].setup
	build := func(client string) Recipe {
		t.Helper()
		r, err := Build(client, s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	all := func(r Recipe) string { b, _ := json.Marshal(r); return string(b) }

	cc := build("claude-code")
	if got := strings.Join(cc.Parts[0].Env, "\n"); !strings.Contains(got, "ANTHROPIC_BASE_URL="+gw+"/anthropic\n") ||
		!strings.Contains(got, `ANTHROPIC_AUTH_TOKEN="$OPENSOUL_GATEWAY_TOKEN"`) || strings.Contains(got, "ANTHROPIC_API_KEY=") {
		t.Errorf("claude-code env:\n%s", got)
	}

	codex := build("codex").Parts[0].File
	var conf struct {
		ModelProvider  string `toml:"model_provider"`
		ModelProviders map[string]struct {
			BaseURL string `toml:"base_url"`
			EnvKey  string `toml:"env_key"`
			WireAPI string `toml:"wire_api"`
		} `toml:"model_providers"`
	}
	if _, err := toml.Decode(codex.Text, &conf); err != nil {
		t.Fatal(err)
	}
	p := conf.ModelProviders[conf.ModelProvider]
	if p.WireAPI != "responses" || p.BaseURL != gw+"/openai/v1" || p.EnvKey != "OPENSOUL_GATEWAY_TOKEN" {
		t.Errorf("codex provider: %+v", conf)
	}

	ai := build("ai-sdk")
	if ai.Parts[0].Provider != "anthropic" || !strings.Contains(ai.Parts[0].Code.Text, "baseURL: '"+gw+"/anthropic/v1'") {
		t.Errorf("the AI SDK's Anthropic provider needs a base URL ending in /v1:\n%s", ai.Parts[0].Code.Text)
	}
	if ai.Parts[1].Provider != "openai" || ai.Parts[1].API != providers.APIOpenAIResponses {
		t.Errorf("ai-sdk openai part: %+v", ai.Parts[1])
	}

	oc := build("openclaw").Parts[0].File
	var entry struct {
		Models struct {
			Providers map[string]struct {
				BaseURL, APIKey, API string
				Models               []struct{ ID string }
			}
		}
	}
	if err := json.Unmarshal([]byte(oc.Text), &entry); err != nil {
		t.Fatal(err)
	}
	e := entry.Models.Providers["opensoul"]
	if e.BaseURL != gw+"/anthropic" || e.APIKey != "${OPENSOUL_GATEWAY_TOKEN}" || e.API != "anthropic-messages" || len(e.Models) != 1 || e.Models[0].ID != "claude-sonnet-5" {
		t.Errorf("openclaw entry: %+v", e)
	}

	for _, c := range Clients() {
		if strings.Contains(all(build(c)), "API_KEY=\"$OPENSOUL") && c != "openai-sdk" {
			t.Errorf("%s exports the gateway token as a provider key", c)
		}
	}
}

// TestPick: the most native route wins, whatever the client's order.
func TestPick(t *testing.T) {
	t.Parallel()
	s := Setup{Routes: []Route{route("anthropic"), route("openai"), route("mylocal")}}
	for _, tc := range []struct {
		apis      []string
		route     string
		api       string
		available bool
	}{
		{[]string{providers.APIAnthropicMessages}, "anthropic", providers.APIAnthropicMessages, true},
		{[]string{providers.APIOpenAIResponses}, "openai", providers.APIOpenAIResponses, true},
		{[]string{providers.APIOpenAIResponses, providers.APIOpenAICompletions}, "openai", providers.APIOpenAIResponses, true},
		{[]string{providers.APIAnthropicMessages, providers.APIOpenAICompletions}, "anthropic", providers.APIAnthropicMessages, true},
		{[]string{providers.APIOpenAICompletions}, "openai", providers.APIOpenAICompletions, true},
		{[]string{"no-such-api"}, "", "", false},
	} {
		r, api, ok := s.Pick(tc.apis)
		if ok != tc.available || r.Provider != tc.route || api != tc.api {
			t.Errorf("Pick(%v) = %s %s %v, want %s %s %v", tc.apis, r.Provider, api, ok, tc.route, tc.api, tc.available)
		}
	}
	// Only Anthropic configured: Codex still gets a route (Anthropic's
	// OpenAI-compatible API), Claude Code's recipe is complete.
	only := Setup{Gateway: gw, TokenVar: "T", Routes: []Route{route("anthropic")}}
	if r, err := Build("codex", only); err != nil || len(r.Parts) != 1 || r.Parts[0].Provider != "anthropic" {
		t.Errorf("codex on anthropic only: %+v %v", r, err)
	}
	if r, err := Build("claude-code", Setup{Gateway: gw, TokenVar: "T", Routes: []Route{route("openai")}}); err != nil || len(r.Parts) != 0 || len(r.Missing) != 1 {
		t.Errorf("claude-code without a Messages route must say what is missing: %+v %v", r, err)
	}
	if _, err := Build("no-such-client", only); err == nil || !strings.Contains(err.Error(), "claude-code") {
		t.Errorf("unknown client: %v", err)
	}
}
