package gateway

import (
	"sync"
	"sync/atomic"

	providers "github.com/opensoul/opensoul/gateway/provider"
)

// providerFacts is what the request path reads of a provider's table
// entry, made once per provider name: providers.For copies the entry
// (its slices and maps) on every call so that a caller may change its
// copy, which cost every request a dozen allocations.
type providerFacts struct {
	providers.Provider // shared by every request: read, never change
	env                []EnvCandidate
}

var (
	providerMemo  sync.Map // provider name → *providerFacts
	providerNames atomic.Int32
)

// maxProviderMemo bounds the memo: names reach it only from the config's
// routes, but a name past the bound is simply not kept.
const maxProviderMemo = 256

// providerOf returns the table's facts for provider (providers.For), from
// the memo once asked for.
func providerOf(provider string) *providerFacts {
	if v, ok := providerMemo.Load(provider); ok {
		return v.(*providerFacts)
	}
	p := providers.For(provider)
	f := &providerFacts{Provider: p}
	for _, v := range p.Env {
		f.env = append(f.env, EnvCandidate{v.Name, v.Type})
	}
	if providerNames.Load() >= maxProviderMemo {
		return f
	}
	v, loaded := providerMemo.LoadOrStore(provider, f)
	if !loaded {
		providerNames.Add(1)
	}
	return v.(*providerFacts)
}

// envVarsOf is EnvVarsFor for the request path: the memo's list, shared,
// to be read only.
func envVarsOf(provider string) []EnvCandidate { return providerOf(provider).env }
