package gateway

import (
	"reflect"
	"testing"

	providers "github.com/opensoul/opensoul/gateway/provider"
)

// TestProviderOfIsFor: the request path's memo holds what providers.For
// and EnvVarsFor say, for every built-in provider and a configured one,
// on the first call and from the memo after.
func TestProviderOfIsFor(t *testing.T) {
	for _, name := range append(providers.Names(), "my-local.llm") {
		for range 2 {
			got := providerOf(name)
			if !reflect.DeepEqual(got.Provider, providers.For(name)) {
				t.Fatalf("%s: providerOf %+v, For %+v", name, got.Provider, providers.For(name))
			}
			if want := EnvVarsFor(name); !reflect.DeepEqual(envVarsOf(name), want) || len(want) == 0 {
				t.Fatalf("%s: envVarsOf %v, EnvVarsFor %v", name, envVarsOf(name), want)
			}
		}
	}
}
