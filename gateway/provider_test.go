package gateway

import (
	"maps"
	"slices"
	"testing"

	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/wasm"
)

// TestProviderTableConstants: the provider table is a leaf, so it spells
// the store's credential types and the modules' token kinds itself; they
// must stay the same strings.
func TestProviderTableConstants(t *testing.T) {
	t.Parallel()
	for _, tc := range [][2]string{
		{providers.CredAPIKey, store.TypeAPIKey},
		{providers.CredToken, store.TypeToken},
		{providers.KindAPIKey, wasm.KindAPIKey},
		{providers.KindSetupToken, wasm.KindSetupToken},
		{providers.KindOAuthAccess, wasm.KindOAuthAccess},
	} {
		if tc[0] != tc[1] {
			t.Errorf("provider table says %q, the other package %q", tc[0], tc[1])
		}
	}
}

// TestBuiltinHeaders pins how each credential is presented when no
// module supplies headers (the headers the old switch built).
func TestBuiltinHeaders(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		provider, typ string
		set           map[string]string
		remove        []string
	}{
		"anthropic key":   {"anthropic", store.TypeAPIKey, map[string]string{"x-api-key": "S"}, []string{"authorization"}},
		"anthropic token": {"anthropic", store.TypeToken, map[string]string{"authorization": "Bearer S", "anthropic-beta": "oauth-2025-04-20"}, []string{"x-api-key"}},
		"google key":      {"google", store.TypeAPIKey, map[string]string{"x-goog-api-key": "S"}, []string{"authorization"}},
		"openai key":      {"openai", store.TypeAPIKey, map[string]string{"authorization": "Bearer S"}, []string{"x-api-key"}},
		"openai token":    {"openai", store.TypeToken, map[string]string{"authorization": "Bearer S"}, []string{"x-api-key"}},
		"configured key":  {"my-llm", store.TypeAPIKey, map[string]string{"authorization": "Bearer S"}, []string{"x-api-key"}},
	} {
		h := BuiltinHeaders(tc.provider, store.Credential{Type: tc.typ, Provider: tc.provider, Key: "S", Token: "S"})
		if !maps.Equal(h.Set, tc.set) || !slices.Equal(h.Remove, tc.remove) {
			t.Errorf("%s: got set %v remove %v, want %v %v", name, h.Set, h.Remove, tc.set, tc.remove)
		}
	}
}

func TestKnownProviderVars(t *testing.T) {
	t.Parallel()
	got := KnownProviderVars([]string{"openai", "my-llm"})
	want := []string{"ANTHROPIC_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY", "GEMINI_API_KEY", "MY_LLM_API_KEY"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
