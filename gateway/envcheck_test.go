package gateway_test

import (
	"testing"

	"github.com/opensoul/opensoul/gateway"
)

// TestInvalidEnvKeyIsSkipped: an environment credential the provider
// module rejects (an API key cut off when pasted) is never sent upstream;
// the config key after it serves, as models status says it would.
func TestInvalidEnvKeyIsSkipped(t *testing.T) {
	t.Parallel()
	cut := keyA[:24]
	f := newFixture(t,
		withEnv(gateway.Env{"ANTHROPIC_API_KEY": {Name: "ANTHROPIC_API_KEY", Value: cut, Source: "process"}}),
		withConfig(func(c *gateway.Config) {
			up := c.Providers["anthropic"]
			up.APIKey = keyB
			c.Providers["anthropic"] = up
		}))
	f.anthropic.set(cut, answer{})
	f.anthropic.set(keyB, answer{})
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "config:providers.anthropic.apiKey" {
		t.Fatalf("%d via %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
	}
	for _, s := range f.anthropic.secrets() {
		if s == cut {
			t.Error("the rejected environment key was sent upstream")
		}
	}
}
