//go:build linux

package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opensoul/opensoul/cli/dotenv"
	"github.com/opensoul/opensoul/gateway/store"
)

// TestOnboardOnATerminal walks onboard's menu on a real pseudo terminal:
// an API key into <state>/.env, a setup-token, a token for another
// provider with an expiry, the OAuth choice for anthropic (refused: its
// subscriptions use setup-tokens; no network), done,
// then yes to installing the service; secrets are typed with echo off.
func TestOnboardOnATerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ptmx, tty, screen := openTerminal(t)

	var stdout, stderr lockedBuffer
	f := &fakeManager{}
	a := newApp(tty, &stdout, &stderr, []string{"OPENSOUL_STATE_DIR=" + e.state, "HOME=" + e.vars["HOME"]})
	a.goos, a.svcRunner, a.binary = "linux", f.runner(), "/usr/local/bin/opensoul"
	done := make(chan int, 1)
	go func() { done <- a.run(context.Background(), []string{"onboard"}) }()

	// Generous waits: on a loaded 2-core machine a step can take seconds.
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s\nstderr: %s", what, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// answer waits for the n-th appearance of prompt, then types text.
	answer := func(prompt string, n int, text string) {
		t.Helper()
		wait(prompt, func() bool { return strings.Count(stderr.String(), prompt) >= n })
		if _, err := ptmx.WriteString(text + "\r"); err != nil {
			t.Fatal(err)
		}
	}
	// secret waits for the n-th hidden prompt with echo off.
	secret := func(n int, text string) {
		t.Helper()
		wait("hidden prompt", func() bool {
			if strings.Count(stderr.String(), "input hidden") < n {
				return false
			}
			st, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
			return err == nil && st.Lflag&unix.ECHO == 0
		})
		if _, err := ptmx.WriteString(text + "\r"); err != nil {
			t.Fatal(err)
		}
	}
	answer("Choice: ", 1, "1")
	answer("Provider [anthropic]: ", 1, "openrouter")
	answer("or as a profile (p)? [e]: ", 1, "")
	secret(1, fixEnvKey)
	answer("Choice: ", 2, "2")
	secret(2, fixSetupToken)
	answer("Choice: ", 3, "3")
	answer("Provider: ", 1, "acme")
	answer("Enter if it does not expire): ", 1, "8h")
	secret(3, fixOpenAIKey)
	answer("Choice: ", 4, "4")
	answer("Provider [openai]: ", 1, "anthropic")
	answer("Choice: ", 5, "")
	answer("and start it now? (y/n) [y]: ", 1, "y")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("onboard did not finish\nstderr: %s", stderr.String())
	}

	vars, _ := dotenv.ReadFile(filepath.Join(e.state, ".env"))
	if vars["OPENROUTER_API_KEY"] != fixEnvKey || !strings.HasPrefix(vars[envGatewayToken], "osk-") {
		t.Errorf("<state>/.env lacks the key or the gateway token")
	}
	ps, _ := store.New(e.state).LoadProfiles("main")
	if c := ps.Profiles["anthropic:default"]; c.Token != fixSetupToken {
		t.Errorf("setup-token not saved as anthropic:default")
	}
	if c := ps.Profiles["acme:default"]; c.Token != fixOpenAIKey || c.Expires == 0 {
		t.Errorf("acme token not saved with its expiry: %+v", c.Expires)
	}
	if !strings.Contains(stderr.String(), "Not saved: anthropic subscriptions sign in with a setup-token") {
		t.Errorf("the OAuth choice:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(e.vars["HOME"], ".config", "systemd", "user", "opensoul-gateway.service")); err != nil {
		t.Errorf("service not installed: %v", err)
	}
	out := stdout.String()
	if !strings.Contains(out, "Installed the systemd user unit") || !strings.Contains(out, "opensoul models status:") || !strings.Contains(out, "acme — acme:default") {
		t.Errorf("stdout:\n%s", out)
	}
	time.Sleep(50 * time.Millisecond) // let the last echo reach the screen
	for name, text := range map[string]string{"terminal": screen.String(), "stdout": out, "stderr": stderr.String()} {
		for _, s := range []string{fixEnvKey, fixSetupToken, fixOpenAIKey} {
			if strings.Contains(text, s[len(s)-12:]) {
				t.Errorf("a secret shows on the %s", name)
			}
		}
	}
	if !strings.Contains(screen.String(), "openrouter") {
		t.Error("typed answers were not echoed (echo left off?)")
	}
}
