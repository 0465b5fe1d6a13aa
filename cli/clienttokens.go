package cli

import (
	"maps"
	"slices"
	"strings"

	"github.com/opensoul/opensoul/gateway"
)

// clientTokens names the tokens that clients present to the gateway:
// the gateway token and every agent token, by value.
func clientTokens(auth GatewayAuthConfig) map[string]string {
	names := map[string]string{}
	if auth.Token != "" {
		names[auth.Token] = "the gateway token (" + envGatewayToken + ")"
	}
	for id, tok := range auth.Agents {
		if tok != "" {
			names[tok] = "agent " + id + "'s gateway token"
		}
	}
	return names
}

// dropClientTokens removes every environment value and providers.<p>.apiKey
// that equals a gateway or agent token: a shell set up for a client (the
// gateway token exported as a provider variable) must never make the
// gateway send its own token upstream. Each one dropped is a warning.
func dropClientTokens(cfg *Config, env gateway.Env) []string {
	tokens := clientTokens(cfg.Gateway.Auth)
	if len(tokens) == 0 {
		return nil
	}
	var warnings []string
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if strings.HasPrefix(name, "OPENSOUL_") {
			continue // OpenSoul's own settings, such as the gateway token itself
		}
		v := env[name]
		if what, ok := tokens[v.Value]; ok {
			delete(env, name)
			warnings = append(warnings, "ignoring "+name+" from "+v.Source+": it holds "+what+
				", which clients present to the gateway; it is never sent to a provider (give clients the token as ANTHROPIC_AUTH_TOKEN)")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Providers)) {
		p := cfg.Providers[name]
		if what, ok := tokens[p.APIKey]; ok && p.APIKey != "" {
			p.APIKey = ""
			cfg.Providers[name] = p
			warnings = append(warnings, "ignoring providers."+name+".apiKey: it holds "+what+
				", which clients present to the gateway; it is never sent to a provider")
		}
	}
	return warnings
}
