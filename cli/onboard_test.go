package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
	"github.com/opensoul/opensoul/gateway/store"
)

// Every way in, with flags only: the secret on stdin.
func TestOnboardFlagsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := &fakeManager{}
	out, errs, code := e.runService(f, fixOpenAIKey, "onboard", "--auth", "api-key", "--provider", "openai", "--store", "profile")
	if code != 0 || !strings.Contains(out, "Saved openai:default (api_key") || !strings.Contains(out, "opensoul models status:") {
		t.Fatalf("api-key as profile: %d\n%s%s", code, out, errs)
	}
	if _, errs, code := e.runService(f, fixAnthropicKey, "onboard", "--auth", "setup-token"); code == 0 || !strings.Contains(errs, "API key, not a setup-token") {
		t.Errorf("an API key given as a setup-token: %d %s", code, errs)
	}
	if out, errs, code := e.runService(f, fixSetupToken+"\n", "onboard", "--auth", "setup-token"); code != 0 || !strings.Contains(out, "Saved anthropic:default (token") {
		t.Fatalf("setup-token: %d\n%s%s", code, out, errs)
	}
	if out, errs, code := e.runService(f, "export ACME_TOKEN='"+fixEnvKey+"'\n", "onboard", "--auth", "token", "--provider", "acme", "--expires-in", "30d", "--profile-id", "acme:ci"); code != 0 || !strings.Contains(out, "Saved acme:ci (token") {
		t.Fatalf("token: %d\n%s%s", code, out, errs)
	}
	if _, errs, code := e.runService(f, "", "onboard", "--auth", "oauth", "--provider", "anthropic"); code == 0 || !strings.Contains(errs, "anthropic subscriptions sign in with a setup-token") {
		t.Errorf("oauth for anthropic: %d %s", code, errs)
	}
	if _, errs, code := e.runService(f, "", "onboard", "--auth", "magic"); code != 2 || !strings.Contains(errs, "--auth: want api-key") {
		t.Errorf("unknown --auth: %d %s", code, errs)
	}
	ps, err := store.New(e.state).LoadProfiles("main")
	if err != nil {
		t.Fatal(err)
	}
	if c := ps.Profiles["openai:default"]; c.Type != store.TypeAPIKey || c.Key != fixOpenAIKey {
		t.Errorf("openai:default = %+v", c.Type)
	}
	if c := ps.Profiles["anthropic:default"]; c.Type != store.TypeToken || c.Token != fixSetupToken {
		t.Errorf("anthropic:default = %+v", c.Type)
	}
	if c := ps.Profiles["acme:ci"]; c.Token != fixEnvKey || time.Until(time.UnixMilli(c.Expires)) < 29*24*time.Hour {
		t.Errorf("acme:ci = %v expires %v", c.Type, c.Expires)
	}

	out, errs, code = e.runService(f, "", "onboard", "--install-service")
	unit := filepath.Join(e.vars["HOME"], ".config", "systemd", "user", "opensoul-gateway.service")
	if _, err := os.Stat(unit); code != 0 || err != nil || !strings.Contains(strings.Join(f.calls, "\n"), "systemctl --user restart opensoul-gateway.service") {
		t.Fatalf("--install-service: %d %v\n%s%s", code, err, out, errs)
	}
	e.assertNoSecrets()
}

// The OAuth choice calls the hook the OAuth login will fill.
func TestOnboardOAuthHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(strings.NewReader(""), &lockedBuffer{}, &lockedBuffer{}, []string{"OPENSOUL_STATE_DIR=" + e.state, "HOME=" + e.vars["HOME"]})
	var got string
	a.oauthLogin = func(_ context.Context, provider string) error { got = provider; return nil }
	if code := a.run(context.Background(), []string{"onboard", "--auth", "oauth", "--provider", "openai"}); code != 0 || got != "openai" {
		t.Fatalf("exit %d, hook saw %q", code, got)
	}
}

// onboard's OAuth choice runs the same sign-in as `models auth login`:
// here the pasted-redirect flow against a real authorization server.
func TestOnboardOAuthSignsIn(t *testing.T) {
	t.Parallel()
	e, as := loginEnv(t)
	out, errs, code := e.interact(pasteApproved(t, as), "onboard", "--auth", "oauth", "--provider", "acme")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if c := e.login("acme:" + oauthtest.Email); c.Type != store.TypeOAuth || c.Refresh == "" {
		t.Fatalf("stored login = %+v", redacted(c))
	}
	e.assertNoSecrets()
}

// The status onboard ends with sees the API key it just saved to
// <state>/.env (it showed "no credential": the config was loaded before).
func TestOnboardStatusSeesSavedEnvKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out, errs, code := e.runService(&fakeManager{}, fixAnthropicKey+"\n", "onboard", "--provider", "anthropic")
	if code != 0 || !strings.Contains(out, "Saved ANTHROPIC_API_KEY=") {
		t.Fatalf("onboard: %d\n%s%s", code, out, errs)
	}
	_, status, _ := strings.Cut(out, "opensoul models status:")
	if !strings.Contains(status, "anthropic — env: ANTHROPIC_API_KEY") || strings.Contains(status, "no credential") {
		t.Errorf("the closing status does not see the saved key:\n%s", status)
	}
}
