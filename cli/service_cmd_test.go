package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/dotenv"
	"github.com/opensoul/opensoul/cli/service"
)

// fakeManager stands in for systemctl and journalctl: it tracks whether
// the unit is started and reports this test process as its main PID, so
// that a gateway run in-process plays the service's process.
type fakeManager struct {
	mu      sync.Mutex
	started bool
	calls   []string
	journal string
	environ string // show-environment's answer
}

func (f *fakeManager) runner() *service.Runner {
	do := func(name string, args []string) (string, error) {
		cmd := strings.Join(append([]string{name}, args...), " ")
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, cmd)
		switch {
		case strings.Contains(cmd, " restart "):
			f.started = true
		case strings.Contains(cmd, " disable --now "):
			f.started = false
		case strings.Contains(cmd, " show "):
			if !f.started {
				return "ActiveState=inactive\nSubState=dead\nMainPID=0\n", nil
			}
			return fmt.Sprintf("ActiveState=active\nSubState=running\nMainPID=%d\n", os.Getpid()), nil
		case strings.HasSuffix(cmd, " show-environment"):
			return f.environ, nil
		case name == "journalctl":
			return f.journal, nil
		}
		return "", nil
	}
	return &service.Runner{
		Output: func(_ context.Context, name string, args ...string) ([]byte, error) {
			out, err := do(name, args)
			return []byte(out), err
		},
		Stream: func(_ context.Context, w io.Writer, name string, args ...string) error {
			out, err := do(name, args)
			io.WriteString(w, out)
			return err
		},
	}
}

// runService runs a command with the fake manager on "linux" and a fixed
// binary path, so that install does not refuse the test binary.
func (e *env) runService(f *fakeManager, stdin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	environ := []string{"OPENSOUL_STATE_DIR=" + e.state}
	for k, v := range e.vars {
		environ = append(environ, k+"="+v)
	}
	a := newApp(strings.NewReader(stdin), &out, &errb, environ)
	a.goos, a.svcRunner, a.binary = "linux", f.runner(), "/usr/local/bin/opensoul"
	code = a.run(context.Background(), args)
	e.seen.Write(out.Bytes())
	e.seen.Write(errb.Bytes())
	return out.String(), errb.String(), code
}

// install → status (with the gateway running) → restart → logs →
// uninstall against a temporary HOME; then the refusal to overwrite an
// edited unit, and --force.
func TestGatewayServiceLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile(".env", "OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\nANTHROPIC_API_KEY="+fixAnthropicKey+"\n")
	f := &fakeManager{journal: "level=INFO msg=\"gateway listening\"\nlevel=ERROR msg=\"config change refused; keeping the config in force\" err=\"bad\"\n"}
	unit := filepath.Join(e.vars["HOME"], ".config", "systemd", "user", "opensoul-gateway.service")

	out, errs, code := e.runService(f, "", "gateway", "status")
	if code != 0 || !strings.Contains(out, "not installed") {
		t.Fatalf("status before install: %d\n%s%s", code, out, errs)
	}
	out, errs, code = e.runService(f, "", "gateway", "install")
	if code != 0 || !strings.Contains(out, "Installed the systemd user unit "+unit) || !strings.Contains(out, "loginctl enable-linger") {
		t.Fatalf("install: %d\n%s%s", code, out, errs)
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `ExecStart="/usr/local/bin/opensoul" "gateway" "--state-dir" "`+e.state+`"`) {
		t.Fatalf("unit runs the wrong command:\n%s", data)
	}
	for _, s := range fixtureSecrets {
		if strings.Contains(string(data), s) {
			t.Fatal("a secret from <state>/.env reached the unit file")
		}
	}

	// The "service's process" is a gateway run in this test process.
	g := startGateway(t, e, "127.0.0.1:0")
	// /readyz says "starting" until the provider modules are compiled.
	var st serviceStatus
	deadline := time.Now().Add(2 * time.Minute)
	for st.Readyz != "ready" && time.Now().Before(deadline) {
		out, errs, code = e.runService(f, "", "gateway", "status", "--json")
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
			t.Fatalf("status --json: %d %v\n%s%s", code, err, out, errs)
		}
		if st.Readyz != "ready" && !strings.HasPrefix(st.Readyz, "not ready (503: starting") {
			t.Fatalf("readyz = %q", st.Readyz)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !st.Installed || !st.Running || st.PID != os.Getpid() || st.Listen != g.addr || st.Readyz != "ready" {
		t.Errorf("status = %+v, want installed, running as pid %d on %s, ready", st, os.Getpid(), g.addr)
	}
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "config change refused") {
		t.Errorf("problems = %q", st.Problems)
	}
	// The running gateway is the test binary, not the installed one.
	if len(st.Differences) != 1 || !strings.Contains(st.Differences[0], "the unit runs /usr/local/bin/opensoul") {
		t.Errorf("differences = %q", st.Differences)
	}

	// A config change that needs a restart shows up in the log and in status.
	e.writeFile("opensoul.yaml", "log:\n  format: json\n")
	waitUntil(t, "the run file to record the restart", func() bool {
		r, ok, _ := readRunInfo(e.state)
		return ok && len(r.Restart) == 1
	})
	out, _, _ = e.runService(f, "", "gateway", "status")
	if !strings.Contains(out, "differs:  log.format is json, the gateway logs text") || !strings.Contains(out, "pid "+fmt.Sprint(os.Getpid())) {
		t.Errorf("status after a listen change:\n%s", out)
	}
	if !strings.Contains(g.stderr.String(), "opensoul gateway restart") {
		t.Errorf("the gateway's log does not say a restart is needed:\n%s", g.stderr.String())
	}
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := readRunInfo(e.state); ok {
		t.Error("the run file outlived the gateway")
	}

	f.calls = nil
	e.runService(f, "", "gateway", "restart")
	out, _, _ = e.runService(f, "", "gateway", "logs", "-n", "5")
	if !strings.Contains(out, "gateway listening") {
		t.Errorf("logs: %q", out)
	}
	if got := strings.Join(f.calls, "\n"); !strings.Contains(got, "systemctl --user restart opensoul-gateway.service") || !strings.Contains(got, "journalctl --user --unit opensoul-gateway.service --lines 5") {
		t.Errorf("calls:\n%s", got)
	}

	// An edited unit: install refuses, shows the diff, leaves it alone.
	edited := strings.Replace(string(data), "RestartSec=5", "RestartSec=30", 1)
	os.WriteFile(unit, []byte(edited), 0o600)
	out, errs, code = e.runService(f, "", "gateway", "install")
	if code != 1 || !strings.Contains(errs, "-RestartSec=30") || !strings.Contains(errs, "+RestartSec=5") || !strings.Contains(errs, "--force") {
		t.Fatalf("install over an edited unit: %d\n%s%s", code, out, errs)
	}
	if b, _ := os.ReadFile(unit); string(b) != edited {
		t.Fatal("a refused install changed the unit")
	}
	out, _, _ = e.runService(f, "", "gateway", "status")
	if !strings.Contains(out, "the unit differs from what install would write") {
		t.Errorf("status of an edited unit:\n%s", out)
	}
	e.ok("", "config", "validate") // the config written above is still valid
	if _, errs, code = e.runService(f, "", "gateway", "install", "--force"); code != 0 {
		t.Fatalf("install --force: %s", errs)
	}
	if b, _ := os.ReadFile(unit); string(b) != string(data) {
		t.Fatal("--force did not rewrite the unit")
	}

	if out, errs, code = e.runService(f, "", "gateway", "uninstall"); code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("uninstall: %d %s%s", code, out, errs)
	}
	if _, err := os.Stat(unit); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("unit still there after uninstall")
	}
	out, _, _ = e.runService(f, "", "gateway", "status")
	if !strings.Contains(out, "not installed") || !strings.Contains(out, "state:    not running") {
		t.Errorf("status after uninstall:\n%s", out)
	}
	e.assertNoSecrets()
}

func TestGatewayServiceElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out, errb bytes.Buffer
	a := newApp(strings.NewReader(""), &out, &errb, []string{"OPENSOUL_STATE_DIR=" + e.state, "HOME=" + e.vars["HOME"]})
	a.goos, a.binary = "windows", "/usr/local/bin/opensoul"
	if code := a.run(context.Background(), []string{"gateway", "install"}); code != 1 || !strings.Contains(errb.String(), "own supervisor") {
		t.Fatalf("install on windows: %d %s", code, errb.String())
	}
	stdout, errs, code := e.run("", "gateway", "instal")
	if code != 2 || !strings.Contains(errs, "did you mean `opensoul gateway install`") {
		t.Fatalf("typo: %d %s%s", code, stdout, errs)
	}
}

// doctor compares this shell with what the installed service will have
// and --fix copies what is missing into <state>/.env, keeping the rest.
func TestDoctorServiceEnv(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["ANTHROPIC_API_KEY"] = fixAnthropicKey
	e.vars["OPENAI_API_KEY"] = fixOpenAIKey
	e.vars["OPENROUTER_API_KEY"] = fixEnvKey
	e.vars[envGatewayToken] = fixGatewayToken
	envFile := e.writeFile(".env", "# keep me\nOPENROUTER_API_KEY="+fixEnvKey+"\nOTHER=1\n")
	f := &fakeManager{environ: "HOME=/h\nOPENAI_API_KEY=" + fixOpenAIKey + "\n"}

	out, _, _ := e.runService(f, "", "doctor")
	if strings.Contains(out, "service env") {
		t.Errorf("doctor compares env with no service installed:\n%s", out)
	}
	e.runService(f, "", "gateway", "install")
	out, _, code := e.runService(f, "", "doctor")
	for _, want := range []string{"service env ANTHROPIC_API_KEY: ANTHROPIC_API_KEY is set in this shell but the gateway service will not have it", "service env OPENSOUL_GATEWAY_TOKEN:"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	for _, not := range []string{"service env OPENAI_API_KEY", "service env OPENROUTER_API_KEY"} {
		if strings.Contains(out, not) {
			t.Errorf("doctor warns about %s, which the service has:\n%s", not, out)
		}
	}

	// --fix alone is a dry run; --fix --yes copies.
	out, errs, _ := e.runService(f, "", "doctor", "--fix")
	if !strings.Contains(out, "Would copy ANTHROPIC_API_KEY, OPENSOUL_GATEWAY_TOKEN from this shell into "+envFile) {
		t.Fatalf("--fix (dry run):\n%s%s", out, errs)
	}
	if vars, _ := dotenv.ReadFile(envFile); vars["ANTHROPIC_API_KEY"] != "" {
		t.Fatal("the dry run wrote")
	}
	out, errs, _ = e.runService(f, "", "doctor", "--fix", "--yes")
	if !strings.Contains(out, "Copied ANTHROPIC_API_KEY, OPENSOUL_GATEWAY_TOKEN into "+envFile) {
		t.Fatalf("--fix --yes:\n%s%s", out, errs)
	}
	data, _ := os.ReadFile(envFile)
	vars, _ := dotenv.ReadFile(envFile)
	if vars["ANTHROPIC_API_KEY"] != fixAnthropicKey || vars[envGatewayToken] != fixGatewayToken || vars["OTHER"] != "1" || !strings.HasPrefix(string(data), "# keep me\n") {
		t.Errorf("<state>/.env after --fix --yes:\n%s", data)
	}
	if fi, _ := os.Stat(envFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", fi.Mode().Perm())
	}
	out, _, _ = e.runService(f, "", "doctor")
	if strings.Contains(out, "service env ANTHROPIC_API_KEY") || strings.Contains(out, "service env OPENSOUL_GATEWAY_TOKEN") {
		t.Errorf("doctor after --fix:\n%s", out)
	}
	e.vars[envGatewayToken] = "osk-another"
	out, _, _ = e.runService(f, "", "doctor")
	if !strings.Contains(out, "OPENSOUL_GATEWAY_TOKEN differs between this shell and what the gateway service will have") {
		t.Errorf("a differing value:\n%s", out)
	}
	e.assertNoSecrets()
}
