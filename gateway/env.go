package gateway

import (
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
)

// EnvVar is one environment value and where it was read from
// ("process", "./.env", "~/.opensoul/.env", "config env.vars", "login shell").
type EnvVar struct {
	Name   string
	Value  string
	Source string
}

// Env holds the environment values OpenSoul may use, by variable name.
type Env map[string]EnvVar

// EnvCandidate names a variable that can hold a provider credential.
type EnvCandidate struct {
	Var  string
	Type string // store credential type
}

// EnvVarsFor lists, in priority order, the variables that can serve a
// provider (DESIGN §3), from the provider table.
func EnvVarsFor(provider string) []EnvCandidate {
	var out []EnvCandidate
	for _, v := range providers.For(provider).Env {
		out = append(out, EnvCandidate{v.Name, v.Type})
	}
	return out
}

// KnownProviderVars lists every variable a login-shell import may take:
// the built-in providers' and those of the configured providers.
func KnownProviderVars(configured []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range append(providers.Names(), configured...) {
		for _, c := range EnvVarsFor(p) {
			if !seen[c.Var] {
				seen[c.Var] = true
				out = append(out, c.Var)
			}
		}
	}
	return out
}

// EnvCredential is one environment variable that holds a credential.
type EnvCredential struct {
	Var  EnvVar
	Cred store.Credential
}

// Credentials returns every environment credential for provider, in
// priority order (EnvVarsFor).
func (e Env) Credentials(provider string) []EnvCredential {
	var out []EnvCredential
	for _, c := range envVarsOf(provider) {
		v, ok := e[c.Var]
		if !ok || v.Value == "" {
			continue
		}
		cred := store.Credential{Type: c.Type, Provider: provider}
		if c.Type == store.TypeAPIKey {
			cred.Key = v.Value
		} else {
			cred.Token = v.Value
		}
		out = append(out, EnvCredential{v, cred})
	}
	return out
}

// Credential returns the first environment credential for provider.
func (e Env) Credential(provider string) (store.Credential, EnvVar, bool) {
	if cs := e.Credentials(provider); len(cs) > 0 {
		return cs[0].Cred, cs[0].Var, true
	}
	return store.Credential{}, EnvVar{}, false
}
