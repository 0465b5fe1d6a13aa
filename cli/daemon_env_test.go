package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	decoyAnthropicKey = "sk-ant-api03-DECOYcwdDotEnvKeyAAAAbbbbCCCCdddd"
	decoyGatewayToken = "osk-DECOYcwdDotEnvToken1234"
)

// TestServiceEnvironment starts the real binary the way the installed
// unit does: an empty environment, `gateway --state-dir <state>`, and a
// working directory whose ./.env holds decoy keys. The gateway takes its
// token and provider key from <state>/.env, ignores the decoys and says so
// (naming the variables, never their values).
func TestServiceEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := opensoulBinary(t)
	up := fakeAnthropic(t, nil)
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	os.WriteFile(filepath.Join(state, ".env"), []byte("OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\nANTHROPIC_API_KEY="+fixAnthropicKey+"\n"), 0o600)
	os.WriteFile(filepath.Join(state, "opensoul.yaml"), []byte("providers:\n  anthropic:\n    baseUrl: "+up.URL+"\n"), 0o600)
	cwd := filepath.Join(dir, "somewhere")
	os.MkdirAll(cwd, 0o700)
	os.WriteFile(filepath.Join(cwd, ".env"), []byte("ANTHROPIC_API_KEY="+decoyAnthropicKey+"\nOPENSOUL_GATEWAY_TOKEN="+decoyGatewayToken+"\nOPENAI_API_KEY="+decoyAnthropicKey+"\nUNRELATED=kept\n"), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "gateway", "--state-dir", state, "--listen", "127.0.0.1:0")
	cmd.Env = []string{} // as empty as a unit's: no HOME, no PATH, no keys
	cmd.Dir = cwd
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	stdout, _ := cmd.StdoutPipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := bannerAddr(t, stdout)
	go io.Copy(io.Discard, stdout)

	post := func(token string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/anthropic/v1/messages", strings.NewReader(`{"model":"m","max_tokens":1,"messages":[]}`))
		req.Header.Set("x-api-key", token)
		req.Header.Set("content-type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(decoyGatewayToken); code != 401 {
		t.Errorf("the decoy gateway token from ./.env was accepted: %d", code)
	}
	if code, body := post(fixGatewayToken); code != 200 {
		t.Fatalf("the token from <state>/.env: %d %s\n%s", code, body, stderr.String())
	}
	if keys := up.seen(); len(keys) != 1 || keys[0] != fixAnthropicKey {
		t.Errorf("upstream saw %d requests, not with the key from <state>/.env", len(keys))
	}
	cancel()
	cmd.Wait()
	log := stderr.String()
	if !strings.Contains(log, "ignoring ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENSOUL_GATEWAY_TOKEN in ./.env") {
		t.Errorf("no warning naming the ignored variables:\n%s", log)
	}
	for _, s := range []string{decoyAnthropicKey, decoyGatewayToken, fixAnthropicKey, fixGatewayToken} {
		if strings.Contains(log, s) {
			t.Errorf("a secret reached the log:\n%s", log)
		}
	}
}

// bannerAddr reads the gateway's first stdout line for its address.
func bannerAddr(t *testing.T, r io.Reader) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		m := regexp.MustCompile(`http://([0-9.:]+)`).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("no address in %q", s)
		}
		return m[1]
	case <-time.After(2 * time.Minute):
		t.Fatal("the gateway printed nothing")
	}
	return ""
}

// With env.cwdDotenv: true, ./.env supplies keys again; a ./.env that is
// <state>/.env warns about nothing.
func TestCwdDotenvOptIn(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile(".env", []byte("OPENROUTER_API_KEY="+fixEnvKey+"\n"), 0o600)
	_, errs, _ := e.run("", "models", "status")
	if !strings.Contains(errs, "ignoring OPENROUTER_API_KEY in ./.env") {
		t.Errorf("no warning: %s", errs)
	}
	e.writeFile("opensoul.yaml", "env:\n  cwdDotenv: true\n")
	out, errs, _ := e.run("", "models", "status", "--json")
	if strings.Contains(errs, "ignoring") || !strings.Contains(out, "./.env") {
		t.Errorf("opt-in: the key from ./.env is not used\n%s\n%s", out, errs)
	}
	e2 := newEnv(t)
	e2.state = dir
	if _, errs, _ := e2.run("", "models", "status"); strings.Contains(errs, "ignoring") {
		t.Errorf("./.env that is <state>/.env: %s", errs)
	}
	e.assertNoSecrets()
}
