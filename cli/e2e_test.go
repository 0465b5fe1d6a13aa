package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The tests that run the real binary share one build per package run:
// three concurrent `go build`s of the same tree (TestBinaryEndToEnd,
// TestServiceEnvironment, the README tour's own) each compiled every
// package again when the build cache was cold, and each linked a 65 MB
// binary.
var (
	binOnce sync.Once
	binDir  string // removed by TestMain
	binPath string
	binErr  error
)

// opensoulBinary is the opensoul binary built from this checkout, built
// on the first call. The tests only run it, never write it.
func opensoulBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "opensoul-test-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "opensoul")
		if out, err := exec.Command("go", "build", "-o", binPath, "..").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestBinaryEndToEnd builds the real opensoul binary and drives it as a
// user's shell would: pipes, exit codes, files on disk.
func TestBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := opensoulBinary(t)
	state := filepath.Join(dir, "state")
	run := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "OPENSOUL_STATE_DIR=" + state}
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		for _, s := range fixtureSecrets {
			if strings.Contains(out.String()+errb.String(), s) {
				t.Fatalf("secret printed by %v", args)
			}
		}
		return out.String(), errb.String(), code
	}
	if _, errs, code := run(fixSetupToken+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "5h"); code != 0 {
		t.Fatalf("paste-token: %d %s", code, errs)
	}
	if _, errs, code := run(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:default"); code != 0 {
		t.Fatalf("paste-token: %d %s", code, errs)
	}
	out, _, code := run("", "models", "status", "--check", "--json")
	if code != 2 {
		t.Fatalf("status --check exit %d, want 2 (token expiring in 5h)\n%s", code, out)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Providers) != 1 || len(rep.Providers[0].Profiles) != 2 {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if rep.Providers[0].Effective.Detail != "anthropic:work (+1 more)" {
		t.Errorf("a token is preferred over an API key by default: %+v", rep.Providers[0].Effective)
	}
	run("", "models", "auth", "order", "set", "--provider", "anthropic", "anthropic:default")
	out, _, _ = run("", "models", "auth", "order", "get", "--provider", "anthropic", "--json")
	if !strings.Contains(out, `"anthropic:default"`) {
		t.Errorf("order get: %s", out)
	}
	for _, f := range []string{filepath.Join(state, "agents", "main", "agent", "auth-profiles.json"), filepath.Join(state, "opensoul.yaml")} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, err, fi.Mode())
		}
	}
	os.WriteFile(filepath.Join(state, "opensoul.yaml"), []byte("gateway:\n  listen: 127.0.0.1:1\n  tokn: x\n"), 0o600)
	_, errs, code := run("", "config", "validate")
	if code != 1 || !strings.Contains(errs, "opensoul.yaml:3:3: gateway.tokn: unknown key") {
		t.Errorf("config validate: %d %q", code, errs)
	}
}
