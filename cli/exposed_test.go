package cli

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// gatewayStartErr runs the gateway until it is listening (then stops it
// and returns nil) or until it refuses to start (its error).
func gatewayStartErr(e *env, listen string) error {
	environ := map[string]string{"OPENSOUL_STATE_DIR": e.state}
	for k, v := range e.vars {
		environ[k] = v
	}
	a := &app{stdin: strings.NewReader(""), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, environ: environ}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	a.flagSets = []flagSetting{{Flag: "--listen", Key: "gateway.listen", Value: listen}}
	go func() { done <- a.runGateway(ctx, func(string) { cancel() }) }()
	if err := <-done; ctx.Err() == nil {
		return err
	}
	return nil
}

// TestEmptyAgentTokenDoesNotOpenAnExposedGateway: an agent entry whose
// token is empty (or an unset ${VAR}) is no token. `config validate`
// names it, and a non-loopback gateway refuses to start on it.
func TestEmptyAgentTokenDoesNotOpenAnExposedGateway(t *testing.T) {
	for name, agents := range map[string]string{
		"empty": `{cron: ""}`,
		"unset": `{cron: "${OPENSOUL_TEST_UNSET_TOKEN}"}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.writeFile("opensoul.yaml", "gateway:\n  auth:\n    agents: "+agents+"\n")
			_, errOut, code := e.run("", "config", "validate")
			if code == 0 || !strings.Contains(errOut, "gateway.auth.agents.cron") {
				t.Errorf("config validate: exit %d: %s", code, errOut)
			}
			if err := gatewayStartErr(e, "0.0.0.0:0"); err == nil {
				t.Fatal("the gateway started on 0.0.0.0 with only an empty agent token")
			}
		})
	}
}

// TestReloadCannotRemoveAuthentication: with the gateway on 0.0.0.0, an
// edit that deletes the token is refused and logged; the old token stays
// in force. /metrics needs the token there too.
func TestReloadCannotRemoveAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := fakeAnthropic(t, nil)
	base := "providers:\n  anthropic:\n    baseUrl: " + up.URL + "\n"
	e.writeFile("opensoul.yaml", base+"gateway:\n  auth:\n    token: "+fixGatewayToken+"\n")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	g := startGateway(t, e, "0.0.0.0:0")
	body := `{"model":"m","max_tokens":1,"messages":[]}`
	if resp, _ := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body); resp.StatusCode != 200 {
		t.Fatalf("with the token: %d", resp.StatusCode)
	}
	if resp, _ := g.post(t, "/anthropic/v1/messages", "", body); resp.StatusCode != 401 {
		t.Fatalf("without a token: %d", resp.StatusCode)
	}
	resp, err := http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("/metrics without a token on 0.0.0.0: %d", resp.StatusCode)
	}

	e.writeFile("opensoul.yaml", base) // the token is gone
	waitUntil(t, "the tokenless config to be refused", func() bool {
		return strings.Contains(g.stderr.String(), "config change refused") && strings.Contains(g.stderr.String(), "gateway.auth")
	})
	if strings.Contains(g.stderr.String(), "config reloaded") {
		t.Errorf("the tokenless config was applied:\n%s", g.stderr.String())
	}
	if resp, _ := g.post(t, "/anthropic/v1/messages", "", body); resp.StatusCode != 401 {
		t.Errorf("after the refused reload, without a token: %d", resp.StatusCode)
	}
	if resp, _ := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body); resp.StatusCode != 200 {
		t.Errorf("after the refused reload, with the old token: %d", resp.StatusCode)
	}
	if keys := up.seen(); len(keys) != 2 {
		t.Errorf("upstream saw %d requests, want 2", len(keys))
	}
}
