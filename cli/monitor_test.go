package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/monitor"
	"github.com/opensoul/opensoul/gateway/store"
)

// runAt runs a command with the clock set to at.
func (e *env) runAt(at time.Time, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	environ := []string{"OPENSOUL_STATE_DIR=" + e.state}
	for k, v := range e.vars {
		environ = append(environ, k+"="+v)
	}
	a := newApp(strings.NewReader(""), &out, &errb, environ)
	a.clock = func() time.Time { return at }
	code = a.run(context.Background(), args)
	e.seen.Write(out.Bytes())
	e.seen.Write(errb.Bytes())
	return out.String(), errb.String(), code
}

// `monitor --format simple` and its exit codes, for each state a widget
// must show.
func TestMonitorSimple(t *testing.T) {
	t.Parallel()
	now := time.Now()
	cases := []struct {
		name  string
		setup func(e *env)
		at    time.Time
		want  string
		code  int
	}{
		{"ok", func(e *env) {
			e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
		}, now, "OK\n", 0},
		{"expiring", func(e *env) {
			e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "5h")
		}, now.Add(time.Minute), "EXPIRING anthropic:work 5h\n", 2},
		{"expired", func(e *env) {
			e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "5h")
		}, now.Add(6 * time.Hour), "EXPIRED anthropic:work\nMISSING anthropic/claude-sonnet-5\n", 1},
		{"missing", func(e *env) {}, now, "MISSING anthropic/claude-sonnet-5\n", 1},
		{"every candidate disabled", func(e *env) {
			e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:a")
			e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:b")
			disable(e, "main", now.Add(time.Hour), "anthropic:a", "anthropic:b")
		}, now, "DISABLED anthropic/claude-sonnet-5\n", 1},
		{"another agent, worst first", func(e *env) {
			e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "20h")
			e.ok(fixSetupToken, "models", "auth", "paste-token", "--agent", "coder", "--provider", "anthropic", "--profile-id", "anthropic:ci", "--expires-in", "1h")
		}, now.Add(2 * time.Hour), "EXPIRED coder/anthropic:ci\nEXPIRING anthropic:work 18h\n", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tc.setup(e)
			out, errs, code := e.runAt(tc.at, "monitor", "--format", "simple")
			if out != tc.want || code != tc.code {
				t.Errorf("monitor --format simple = %q exit %d, want %q exit %d\n%s", out, code, tc.want, tc.code, errs)
			}
			if _, _, check := e.runAt(tc.at, "models", "status", "--check"); tc.name != "another agent, worst first" && check != code {
				t.Errorf("models status --check exits %d, monitor %d", check, code)
			}
			out, _, _ = e.runAt(tc.at, "monitor", "--format", "json")
			var rep struct {
				ExitCode int               `json:"exitCode"`
				Problems []monitor.Problem `json:"problems"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.ExitCode != tc.code {
				t.Errorf("json: %v %s", err, out)
			}
			e.assertNoSecrets()
		})
	}
}

func disable(e *env, agent string, until time.Time, ids ...string) {
	e.t.Helper()
	st := store.New(e.state)
	if err := st.UpdateState(agent, func(s *store.State) error {
		for _, id := range ids {
			s.UsageStats[id] = &store.UsageStats{DisabledUntil: until.UnixMilli(), DisabledReason: "auth"}
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// hookServer is an ntfy topic and a webhook on loopback.
type hookServer struct {
	*httptest.Server
	mu    sync.Mutex
	ntfy  []string // "priority|body"
	hooks []map[string]any
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		switch r.URL.Path {
		case "/opensoul-topic":
			h.ntfy = append(h.ntfy, r.Header.Get("Priority")+"|"+string(body))
		case "/hook":
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil || r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(400)
				return
			}
			h.hooks = append(h.hooks, m)
		default:
			w.WriteHeader(503)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) take() (ntfy []string, hooks []map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ntfy, hooks, h.ntfy, h.hooks = h.ntfy, h.hooks, nil, nil
	return ntfy, hooks
}

// One alert per problem per hour, one "resolved", a new alert when the
// problem changes, and a failed delivery retried on the next run.
func TestMonitorAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := newHookServer(t)
	log := filepath.Join(t.TempDir(), "exec.log")
	notify := []string{"monitor", "--ntfy", h.URL + "/opensoul-topic", "--webhook", h.URL + "/hook", "--exec", `echo "$OPENSOUL_ALERT_EVENT $OPENSOUL_ALERT_KIND $OPENSOUL_ALERT_SUBJECT" >> ` + log}
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "5h")
	t0 := time.Now()

	_, errs, code := e.runAt(t0, notify...)
	ntfy, hooks := h.take()
	if code != 2 || len(ntfy) != 1 || !strings.HasPrefix(ntfy[0], "default|anthropic:work: expires in 5h") || len(hooks) != 1 {
		t.Fatalf("first run: exit %d ntfy %q hooks %v\n%s", code, ntfy, hooks, errs)
	}
	if p := hooks[0]["problem"].(map[string]any); hooks[0]["event"] != "problem" || p["kind"] != "expiring" || p["subject"] != "anthropic:work" {
		t.Errorf("webhook body: %v", hooks[0])
	}
	// Within the hour: nothing new, though the time left changed.
	e.runAt(t0.Add(30*time.Minute), notify...)
	if ntfy, hooks := h.take(); len(ntfy)+len(hooks) != 0 {
		t.Fatalf("alerted twice within an hour: %q %v", ntfy, hooks)
	}
	// After an hour: once more.
	e.runAt(t0.Add(61*time.Minute), notify...)
	if ntfy, _ := h.take(); len(ntfy) != 1 {
		t.Fatalf("no reminder after an hour: %q", ntfy)
	}
	// Expiring → expired is a new problem (alert now, high priority), so
	// is the provider left without a credential, and the expiring one is
	// resolved.
	e.runAt(t0.Add(5*time.Hour+2*time.Minute), notify...)
	ntfy, _ = h.take()
	if len(ntfy) != 3 || !strings.HasPrefix(ntfy[0], "high|anthropic:work: expired") || !strings.HasPrefix(ntfy[1], "high|anthropic/claude-sonnet-5: no credential can serve") || !strings.HasPrefix(ntfy[2], "default|Resolved: anthropic:work: expires in") {
		t.Fatalf("expired: %q", ntfy)
	}
	// A fresh token: one resolved message, then silence.
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "200h")
	out, _, code := e.runAt(t0.Add(5*time.Hour+3*time.Minute), append(notify, "--format", "simple")...)
	ntfy, hooks = h.take()
	if code != 0 || out != "OK\n" || len(ntfy) != 2 || !strings.HasPrefix(ntfy[0], "default|Resolved: anthropic:work: expired") || !strings.HasPrefix(ntfy[1], "default|Resolved: anthropic/claude-sonnet-5: no credential") || hooks[0]["event"] != "resolved" {
		t.Fatalf("resolved: exit %d %q %q %v", code, out, ntfy, hooks)
	}
	e.runAt(t0.Add(7*time.Hour), notify...)
	if ntfy, hooks := h.take(); len(ntfy)+len(hooks) != 0 {
		t.Fatalf("resolved twice: %q %v", ntfy, hooks)
	}
	data, _ := os.ReadFile(log)
	if want := "problem expiring anthropic:work\nproblem expiring anthropic:work\nproblem expired anthropic:work\nproblem no-credential anthropic/claude-sonnet-5\nresolved expiring anthropic:work\nresolved expired anthropic:work\nresolved no-credential anthropic/claude-sonnet-5\n"; string(data) != want {
		t.Errorf("--exec saw:\n%s\nwant:\n%s", data, want)
	}
	fi, err := os.Stat(monitor.StatePath(e.state))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("monitor-state.json: %v %v", fi, err)
	}

	// A notifier that fails everywhere: the alert is retried next run.
	e2 := newEnv(t)
	bad := []string{"monitor", "--ntfy", h.URL + "/down"}
	_, errs, _ = e2.runAt(t0, bad...)
	if !strings.Contains(errs, "503") {
		t.Errorf("a failing notifier is not reported: %s", errs)
	}
	_, _, _ = e2.runAt(t0.Add(time.Minute), "monitor", "--ntfy", h.URL+"/opensoul-topic")
	if ntfy, _ := h.take(); len(ntfy) != 1 || !strings.Contains(ntfy[0], "anthropic/claude-sonnet-5: no credential") {
		t.Errorf("undelivered alert not retried: %q", ntfy)
	}
	e.assertNoSecrets()
	e2.assertNoSecrets()
}

func TestMonitorInstall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := &fakeManager{}
	if _, errs, code := e.runService(f, "", "monitor", "install"); code != 2 || !strings.Contains(errs, "at least one notifier") {
		t.Fatalf("install without a notifier: %d %s", code, errs)
	}
	out, errs, code := e.runService(f, "", "monitor", "install", "--ntfy", "https://ntfy.sh/ada", "--desktop")
	if code != 0 {
		t.Fatalf("monitor install: %d %s%s", code, out, errs)
	}
	unitDir := filepath.Join(e.vars["HOME"], ".config", "systemd", "user")
	svc, err := os.ReadFile(filepath.Join(unitDir, "opensoul-monitor.service"))
	if err != nil || !strings.Contains(string(svc), `ExecStart="/usr/local/bin/opensoul" "monitor" "--state-dir" "`+e.state+`" "--ntfy" "https://ntfy.sh/ada" "--desktop"`) {
		t.Fatalf("monitor unit: %v\n%s", err, svc)
	}
	if got := strings.Join(f.calls, "\n"); !strings.Contains(got, "systemctl --user enable --now opensoul-monitor.timer") {
		t.Errorf("calls:\n%s", got)
	}
	if _, errs, code := e.runService(f, "", "monitor", "install", "--stdout"); code != 1 || !strings.Contains(errs, `-ExecStart=`) || !strings.Contains(errs, "--force") {
		t.Errorf("a different install without --force: %d %s", code, errs)
	}
	if out, errs, code := e.runService(f, "", "monitor", "uninstall"); code != 0 || !strings.Contains(out, "opensoul-monitor.timer") {
		t.Fatalf("uninstall: %d %s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(unitDir, "opensoul-monitor.timer")); !os.IsNotExist(err) {
		t.Error("timer left behind")
	}
}
