package connect_test

import (
	"fmt"

	"github.com/opensoul/opensoul/cli/connect"
	providers "github.com/opensoul/opensoul/gateway/provider"
)

// A recipe is built from the gateway's address, the token's variable and
// the configured routes; Claude Code takes the route that speaks the
// Messages API most natively.
func ExampleBuild() {
	p := providers.For("anthropic")
	setup := connect.Setup{
		Gateway:  "http://127.0.0.1:18789",
		TokenVar: "OPENSOUL_GATEWAY_TOKEN",
		Routes: []connect.Route{{Provider: "anthropic", Root: "http://127.0.0.1:18789/anthropic",
			API: "http://127.0.0.1:18789/anthropic" + p.APIPrefix, APIs: p.APIs}},
	}
	r, err := connect.Build("claude-code", setup)
	if err != nil {
		panic(err)
	}
	for _, line := range r.Parts[0].Env {
		fmt.Println(line)
	}
	// Output:
	// export ANTHROPIC_BASE_URL=http://127.0.0.1:18789/anthropic
	// export ANTHROPIC_AUTH_TOKEN="$OPENSOUL_GATEWAY_TOKEN"
}
