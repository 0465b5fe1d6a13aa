package cli

import (
	"strings"
	"testing"
)

// TestGatewayTokenIsNeverAProviderCredential: a shell set up for a client
// (the gateway token exported as ANTHROPIC_API_KEY, an agent token as
// OPENAI_API_KEY, the gateway token as a config apiKey) gives the gateway
// no provider credential; models status and doctor say why.
func TestGatewayTokenIsNeverAProviderCredential(t *testing.T) {
	t.Parallel()
	const agentToken = "osk-FIXTUREagentTokenOpsOps1234"
	e := newEnv(t)
	e.vars["OPENSOUL_GATEWAY_TOKEN"] = fixGatewayToken
	e.vars["ANTHROPIC_API_KEY"] = fixGatewayToken
	e.vars["OPENAI_API_KEY"] = agentToken
	e.writeFile("opensoul.yaml", `gateway:
  auth:
    agents:
      ops: `+agentToken+`
providers:
  openrouter:
    apiKey: `+fixGatewayToken+`
`)
	out, errs, _ := e.run("", "models", "status")
	for _, want := range []string{
		"ignoring ANTHROPIC_API_KEY from process: it holds the gateway token",
		"ignoring OPENAI_API_KEY from process: it holds agent ops's gateway token",
		"ignoring providers.openrouter.apiKey: it holds the gateway token",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("models status stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "ignoring OPENSOUL_GATEWAY_TOKEN") {
		t.Errorf("the gateway token's own variable is reported as a provider credential:\n%s", errs)
	}
	if strings.Contains(out, "env:ANTHROPIC_API_KEY") || strings.Contains(out, "env: ANTHROPIC_API_KEY") {
		t.Errorf("models status still uses the gateway token as the Anthropic credential:\n%s", out)
	}
	dout, _, _ := e.run("", "doctor")
	if !strings.Contains(dout, "[warn] client token: ignoring ANTHROPIC_API_KEY") {
		t.Errorf("doctor does not warn about the gateway token:\n%s", dout)
	}
	if strings.Contains(dout, "[ok  ] credentials anthropic") {
		t.Errorf("doctor calls the gateway token an anthropic credential:\n%s", dout)
	}
	e.assertNoSecrets()
}
