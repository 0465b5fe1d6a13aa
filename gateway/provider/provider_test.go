package provider_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway/provider"
)

// TestTable: every built-in provider carries the facts its callers rely
// on: an https base URL, an API-key variable last in Env, at least one
// wire API, presentations with a header.
func TestTable(t *testing.T) {
	t.Parallel()
	names := provider.Names()
	if len(names) == 0 {
		t.Fatal("no built-in providers")
	}
	for _, p := range provider.Builtin() {
		t.Run(p.Name, func(t *testing.T) {
			u, err := url.Parse(p.BaseURL)
			if err != nil || u.Scheme != "https" || u.Host == "" {
				t.Errorf("BaseURL %q: want an https URL", p.BaseURL)
			}
			if p.Title == "" {
				t.Error("no Title")
			}
			if len(p.Env) == 0 || p.Env[len(p.Env)-1].Type != provider.CredAPIKey || !strings.HasSuffix(p.APIKeyVar(), "_API_KEY") {
				t.Errorf("Env %v: the last variable must be the API key", p.Env)
			}
			if len(p.APIs) == 0 {
				t.Error("no wire APIs")
			}
			if p.APIKey.Header == "" || p.Token.Header == "" {
				t.Errorf("presentations without a header: %+v %+v", p.APIKey, p.Token)
			}
			if p.SetupToken != nil && !slices.Contains(p.Kinds, provider.KindSetupToken) {
				t.Errorf("has setup-tokens but Kinds %v lacks %s", p.Kinds, provider.KindSetupToken)
			}
			if got, ok := provider.Lookup(p.Name); !ok || got.Name != p.Name {
				t.Errorf("Lookup(%q) = %v, %v", p.Name, got.Name, ok)
			}
		})
	}
	if _, ok := provider.Lookup("my-llm"); ok {
		t.Error("Lookup found a provider the table does not have")
	}
}

// TestFacts pins the facts that used to live in seven switch statements
// (issue 17), so moving them into the table changed no behaviour.
func TestFacts(t *testing.T) {
	t.Parallel()
	env := func(name string) []string {
		var out []string
		for _, v := range provider.For(name).Env {
			out = append(out, v.Name+"="+v.Type)
		}
		return out
	}
	for name, tc := range map[string]struct{ got, want []string }{
		"anthropic env":  {env("anthropic"), []string{"ANTHROPIC_OAUTH_TOKEN=token", "ANTHROPIC_API_KEY=api_key"}},
		"openai env":     {env("openai"), []string{"OPENAI_API_KEY=api_key"}},
		"openrouter env": {env("openrouter"), []string{"OPENROUTER_API_KEY=api_key"}},
		"google env":     {env("google"), []string{"GEMINI_API_KEY=api_key"}},
		"configured env": {env("my-llm.v2"), []string{"MY_LLM_V2_API_KEY=api_key"}},
		"names":          {provider.Names(), []string{"anthropic", "openai", "openrouter", "google"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, tc.got, tc.want)
		}
	}
	base := map[string]string{
		"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com",
		"openrouter": "https://openrouter.ai/api", "google": "https://generativelanguage.googleapis.com",
	}
	for name, want := range base {
		if got := provider.For(name).BaseURL; got != want {
			t.Errorf("%s BaseURL %q, want %q", name, got, want)
		}
	}
	if provider.For("my-llm").BaseURL != "" {
		t.Error("a configured provider got a default base URL")
	}
	for name, want := range map[string]provider.ErrorShape{"anthropic": provider.ErrorsAnthropic, "openai": provider.ErrorsOpenAI, "openrouter": provider.ErrorsOpenAI, "my-llm": provider.ErrorsOpenAI} {
		if got := provider.For(name).Errors; got != want {
			t.Errorf("%s error shape %v, want %v", name, got, want)
		}
	}
	var withTokens, onboard []string
	for _, p := range provider.Builtin() {
		if p.SetupToken != nil {
			withTokens = append(withTokens, p.Name)
		}
		if p.Onboard {
			onboard = append(onboard, p.Name)
		}
	}
	if !slices.Equal(withTokens, []string{"anthropic"}) || !slices.Equal(onboard, []string{"anthropic", "openai", "openrouter"}) {
		t.Errorf("setup-tokens %v, onboard %v", withTokens, onboard)
	}
}

func TestAPIOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ provider, path, want string }{
		{"anthropic", "/v1/messages", provider.APIAnthropicMessages},
		{"anthropic", "/v1/chat/completions", provider.APIOpenAICompletions},
		{"openai", "/v1/messages", ""}, // only Anthropic speaks Messages
		{"openai", "/v1/chat/completions", provider.APIOpenAICompletions},
		{"openai", "/v1/responses", provider.APIOpenAIResponses},
		{"openrouter", "/v1/responses", provider.APIOpenAIResponses},
		{"my-llm", "/v1/chat/completions", provider.APIOpenAICompletions},
		{"my-llm", "/v1/messages", ""},
		{"anthropic", "/v1/models", ""},
	} {
		if got := provider.For(tc.provider).APIOf(tc.path); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.provider, tc.path, got, tc.want)
		}
	}
}

func TestCredentialType(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]string{provider.KindAPIKey: provider.CredAPIKey, provider.KindSetupToken: provider.CredToken, provider.KindOAuthAccess: provider.CredToken, "unknown": ""} {
		if got, ok := provider.CredentialType(kind); got != want || ok != (want != "") {
			t.Errorf("%s: got %q, %v; want %q", kind, got, ok, want)
		}
	}
}

// TestCopies: callers get copies; changing one never changes the table.
func TestCopies(t *testing.T) {
	t.Parallel()
	p := provider.For("anthropic")
	p.Env[0].Name = "X"
	p.APIs[0] = "x"
	p.Token.Extra["anthropic-beta"] = "x"
	p.Token.Remove[0] = "x"
	p.SetupToken.Prefix = "x"
	q := provider.For("anthropic")
	if q.Env[0].Name == "X" || q.APIs[0] == "x" || q.Token.Extra["anthropic-beta"] == "x" || q.Token.Remove[0] == "x" || q.SetupToken.Prefix == "x" {
		t.Errorf("the table changed through a returned copy: %+v", q)
	}
}

func ExampleFor() {
	p := provider.For("anthropic")
	fmt.Println(p.BaseURL, p.APIKeyVar(), p.APIOf("/v1/messages"))
	fmt.Println(provider.For("my-llm").APIKeyVar())
	// Output:
	// https://api.anthropic.com ANTHROPIC_API_KEY anthropic-messages
	// MY_LLM_API_KEY
}
