package service

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden unit files in testdata/")

// goldenSpec is a fixed spec for the golden files.
var goldenSpec = Spec{Binary: "/usr/local/bin/opensoul", StateDir: "/home/ada/.opensoul", Drain: 30 * time.Second}

// fakeRunner records every command and answers from reply.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	reply func(cmd string) (string, error)
}

func (f *fakeRunner) runner() Runner {
	do := func(name string, args []string) (string, error) {
		cmd := strings.Join(append([]string{name}, args...), " ")
		f.mu.Lock()
		f.calls = append(f.calls, cmd)
		f.mu.Unlock()
		if f.reply == nil {
			return "", nil
		}
		return f.reply(cmd)
	}
	return Runner{
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

func (f *fakeRunner) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func newService(t *testing.T, goos string, f *fakeRunner) *Service {
	t.Helper()
	s, err := New(Options{GOOS: goos, Home: t.TempDir(), UID: 501, Runner: f.runner()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGoldenUnits(t *testing.T) {
	t.Parallel()
	for goos, file := range map[string]string{"linux": "opensoul-gateway.service", "darwin": "ai.opensoul.gateway.plist"} {
		s := newService(t, goos, &fakeRunner{})
		got, err := s.Render(goldenSpec)
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", file)
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: rendered unit differs from the golden file (go test -update to accept):\n%s", goos, Diff(golden, want, got))
		}
	}
}

// Awkward paths survive the trip into the unit file and back.
func TestArgsRoundTrip(t *testing.T) {
	t.Parallel()
	specs := map[string]Spec{
		"plain":     goldenSpec,
		"spaces":    {Binary: "/Applications/Open Soul/opensoul", StateDir: "/Users/ada/My State", Listen: "127.0.0.1:9000", Drain: time.Second},
		"escapes":   {Binary: `/opt/o"s\bin/opensoul`, StateDir: "/home/x/100%$HOME", Config: "/etc/o&s<1>.yaml"},
		"config":    {Binary: "/bin/opensoul", StateDir: "/s", Config: "/c/opensoul.yaml", Listen: "[::1]:1"},
		"specifier": {Binary: "/bin/%h", StateDir: "/$USER/%i"},
	}
	for name, spec := range specs {
		for _, goos := range []string{"linux", "darwin"} {
			t.Run(name+"/"+goos, func(t *testing.T) {
				t.Parallel()
				s := newService(t, goos, &fakeRunner{})
				unit, err := s.Render(spec)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.b.args(unit)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, spec.Args()) {
					t.Errorf("args = %q, want %q\n%s", got, spec.Args(), unit)
				}
			})
		}
	}
}

func TestRenderRefusesRelativeAndMultiline(t *testing.T) {
	t.Parallel()
	for _, spec := range []Spec{
		{Binary: "opensoul", StateDir: "/s"},
		{Binary: "/bin/opensoul", StateDir: "state"},
		{Binary: "/bin/opensoul", StateDir: "/s", Listen: "a\nExecStartPre=/bin/rm"},
	} {
		for _, goos := range []string{"linux", "darwin"} {
			if _, err := newService(t, goos, &fakeRunner{}).Render(spec); err == nil {
				t.Errorf("%s: Render(%+v) accepted", goos, spec)
			}
		}
	}
}

func TestUnsupportedOS(t *testing.T) {
	t.Parallel()
	_, err := New(Options{GOOS: "windows", Home: "/h"})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "own supervisor") {
		t.Fatalf("err = %v", err)
	}
}

// systemdAnalyze returns the path of systemd-analyze, skipping (or, in CI,
// failing) when it is missing.
func systemdAnalyze(t *testing.T) string {
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("OPENSOUL_REQUIRE_SYSTEMD_ANALYZE") != "" {
			t.Fatal("systemd-analyze not found; .ci/run installs Debian's systemd package")
		}
		t.Skip("systemd-analyze not found (apt-get install systemd); CI requires it")
	}
	return p
}

// verifyUnit runs `systemd-analyze verify --user` on a unit file offline:
// no systemd needs to run as PID 1 (this works in a container), only a
// private XDG_RUNTIME_DIR; --man=no skips the Documentation= man page
// lookup. verify exits 0 on unknown keys and bad values and only warns, so
// any line naming the unit file counts as a failure.
func verifyUnit(t *testing.T, tool, unitPath string) (problems string, err error) {
	rt := t.TempDir()
	cmd := exec.Command(tool, "verify", "--user", "--man=no", unitPath)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt, "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, filepath.Base(unitPath)) {
			bad = append(bad, l)
		}
	}
	return strings.Join(bad, "\n"), err
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	t.Parallel()
	tool := systemdAnalyze(t)
	bin, err := os.Executable() // ExecStart must name an executable file
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state with space")
	os.MkdirAll(state, 0o700)
	s := newService(t, "linux", &fakeRunner{})
	for _, spec := range []Spec{
		{Binary: bin, StateDir: state, Drain: 30 * time.Second},
		{Binary: bin, StateDir: state, Config: "/etc/100%.yaml", Listen: "127.0.0.1:9000", Drain: 1500 * time.Millisecond},
	} {
		unit, err := s.Render(spec)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), unitName)
		os.WriteFile(p, unit, 0o600)
		if problems, err := verifyUnit(t, tool, p); err != nil || problems != "" {
			t.Errorf("systemd-analyze verify: %v\n%s\n--- unit:\n%s", err, problems, unit)
		}
	}
	// The check can fail: a bad value and an unknown key are reported.
	unit, _ := s.Render(Spec{Binary: bin, StateDir: state})
	broken := strings.Replace(string(unit), "Restart=on-failure", "Restart=sometimes\nRestartEvery=5", 1)
	p := filepath.Join(t.TempDir(), unitName)
	os.WriteFile(p, []byte(broken), 0o600)
	problems, _ := verifyUnit(t, tool, p)
	if !strings.Contains(problems, "sometimes") || !strings.Contains(problems, "RestartEvery") {
		t.Errorf("verify did not flag a broken unit:\n%s", problems)
	}
}

// The systemd unit, line by line: what runs, restart, drain, no env.
func TestSystemdUnitFields(t *testing.T) {
	t.Parallel()
	s := newService(t, "linux", &fakeRunner{})
	unit, _ := s.Render(Spec{Binary: "/bin/opensoul", StateDir: "/s", Drain: 45 * time.Second})
	for _, want := range []string{
		"\nExecStart=\"/bin/opensoul\" \"gateway\" \"--state-dir\" \"/s\"\n",
		"\nWorkingDirectory=/s\n", "\nRestart=on-failure\n", "\nKillSignal=SIGTERM\n",
		"\nTimeoutStopSec=55\n", "\nWantedBy=default.target\n", "loginctl enable-linger",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(string(unit), "Environment") {
		t.Errorf("unit sets an environment; secrets and keys come from <state>/.env:\n%s", unit)
	}
}

// The plist, parsed and checked field by field.
func TestLaunchdPlistFields(t *testing.T) {
	t.Parallel()
	s := newService(t, "darwin", &fakeRunner{})
	spec := Spec{Binary: "/opt/Open Soul/opensoul", StateDir: "/Users/ada/.opensoul", Listen: "127.0.0.1:9000", Drain: 30 * time.Second}
	data, err := s.Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadPlist(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	want := map[string]any{
		"Label":             "ai.opensoul.gateway",
		"ProgramArguments":  []any{"/opt/Open Soul/opensoul", "gateway", "--state-dir", "/Users/ada/.opensoul", "--listen", "127.0.0.1:9000"},
		"WorkingDirectory":  "/Users/ada/.opensoul",
		"RunAtLoad":         true,
		"KeepAlive":         map[string]any{"SuccessfulExit": false},
		"ExitTimeOut":       int64(40),
		"ThrottleInterval":  int64(5),
		"StandardOutPath":   "/Users/ada/.opensoul/logs/gateway.log",
		"StandardErrorPath": "/Users/ada/.opensoul/logs/gateway.log",
	}
	got, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("plist top level is %T", v)
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %s (an EnvironmentVariables key would carry secrets)", k)
		}
	}
	if !strings.HasSuffix(s.Path(), "/Library/LaunchAgents/ai.opensoul.gateway.plist") {
		t.Errorf("path %s", s.Path())
	}
}

func TestReadPlistRejects(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`<plist><dict><string>x</string><string>y</string></dict></plist>`,
		`<plist><dict><key>a</key></dict></plist>`,
		`<plist><dict><key>a</key><integer>x</integer></dict></plist>`,
		`<plist><dict><key>a</key><date>x</date></dict></plist>`,
		`<plist><dict>`,
	} {
		if v, err := ReadPlist([]byte(bad)); err == nil {
			t.Errorf("ReadPlist(%s) = %#v, want an error", bad, v)
		}
	}
}

// install → state → restart → uninstall with systemctl faked, then the
// refusal to overwrite an edited unit and --force.
func TestSystemdLifecycle(t *testing.T) {
	t.Parallel()
	f := &fakeRunner{reply: func(cmd string) (string, error) {
		switch {
		case strings.HasPrefix(cmd, "systemctl --user show"):
			return "ActiveState=active\nSubState=running\nMainPID=4242\nExecMainStartTimestamp=Tue 2026-12-01 21:00:00 UTC\n", nil
		case strings.HasPrefix(cmd, "journalctl"):
			return "time=… level=INFO msg=\"gateway listening\"\ntime=… level=ERROR msg=\"config change refused\"\nopensoul-gateway.service: Failed with result 'exit-code'.\n", nil
		}
		return "", nil
	}}
	s := newService(t, "linux", f)
	spec := Spec{Binary: "/bin/opensoul", StateDir: filepath.Join(t.TempDir(), "state"), Drain: time.Second}
	ctx := context.Background()
	if err := s.Restart(ctx); !errors.Is(err, ErrNotInstalled) {
		t.Fatal("restart before install should say not installed")
	}
	unchanged, err := s.Install(ctx, spec, false)
	if err != nil || unchanged {
		t.Fatalf("install: unchanged=%v err=%v", unchanged, err)
	}
	wantCalls(t, f.take(), "systemctl --user daemon-reload", "systemctl --user enable opensoul-gateway.service", "systemctl --user restart opensoul-gateway.service")
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("unit file: %v %v", fi, err)
	}
	if args, err := s.InstalledArgs(); err != nil || !reflect.DeepEqual(args, spec.Args()) {
		t.Fatalf("installed args %q %v", args, err)
	}
	if unchanged, err := s.Install(ctx, spec, false); err != nil || !unchanged {
		t.Fatalf("same install again: unchanged=%v err=%v", unchanged, err)
	}
	f.take()

	st, err := s.State(ctx)
	if err != nil || !st.Running || st.PID != 4242 || st.Active != "active (running)" || st.Since.IsZero() {
		t.Fatalf("state = %+v, %v", st, err)
	}
	probs, err := s.Problems(ctx, spec, 5)
	if err != nil || len(probs) != 2 || !strings.Contains(probs[0], "level=ERROR") {
		t.Fatalf("problems = %q %v", probs, err)
	}

	// An edited unit is not overwritten without force; the diff shows both sides.
	edited := strings.Replace(readFile(t, s.Path()), "RestartSec=5", "RestartSec=60", 1)
	os.WriteFile(s.Path(), []byte(edited), 0o600)
	f.take()
	_, err = s.Install(ctx, spec, false)
	var ce *ChangedError
	if !errors.As(err, &ce) || !strings.Contains(ce.Diff, "-RestartSec=60") || !strings.Contains(ce.Diff, "+RestartSec=5") {
		t.Fatalf("install over an edited unit: %v", err)
	}
	if readFile(t, s.Path()) != edited || len(f.take()) != 0 {
		t.Fatal("a refused install touched the unit or systemd")
	}
	if _, err := s.Install(ctx, spec, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(readFile(t, s.Path()), "RestartSec=60") {
		t.Fatal("--force did not rewrite the unit")
	}
	f.take()

	if err := s.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.take(), "systemctl --user disable --now opensoul-gateway.service", "systemctl --user daemon-reload")
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Fatalf("unit still there: %v", err)
	}
	if err := s.Uninstall(ctx); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("second uninstall: %v", err)
	}
}

func TestLaunchdLifecycle(t *testing.T) {
	t.Parallel()
	loaded := false
	f := &fakeRunner{}
	f.reply = func(cmd string) (string, error) {
		switch {
		case strings.HasPrefix(cmd, "launchctl bootstrap"):
			loaded = true
		case strings.HasPrefix(cmd, "launchctl bootout"):
			if !loaded {
				return "", errors.New("Boot-out failed: 3: No such process")
			}
			loaded = false
		case strings.HasPrefix(cmd, "launchctl print"):
			if !loaded {
				return "", errors.New("Could not find service")
			}
			return "gui/501/ai.opensoul.gateway = {\n\tactive count = 1\n\tstate = running\n\tpid = 777\n\tendpoints = {\n\t\tstate = active\n\t}\n}\n", nil
		}
		return "", nil
	}
	s := newService(t, "darwin", f)
	spec := Spec{Binary: "/bin/opensoul", StateDir: filepath.Join(t.TempDir(), "state"), Drain: time.Second}
	ctx := context.Background()
	if _, err := s.Install(ctx, spec, false); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.take(), "launchctl bootout gui/501/ai.opensoul.gateway", "launchctl bootstrap gui/501 "+s.Path(), "launchctl enable gui/501/ai.opensoul.gateway")
	st, _ := s.State(ctx)
	if !st.Running || st.PID != 777 || st.Active != "running" {
		t.Fatalf("state = %+v", st)
	}
	os.WriteFile(filepath.Join(spec.StateDir, "logs", "gateway.log"), []byte("level=INFO msg=a\nlevel=WARN msg=\"gateway.listen changed\"\n"), 0o600)
	if p, err := s.Problems(ctx, spec, 5); err != nil || len(p) != 1 || !strings.Contains(p[0], "gateway.listen") {
		t.Fatalf("problems %q %v", p, err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.take()[1:], "launchctl kickstart -k gui/501/ai.opensoul.gateway", "launchctl bootout gui/501/ai.opensoul.gateway")
	if st, _ := s.State(ctx); st.Running {
		t.Fatalf("running after uninstall: %+v", st)
	}
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands run:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzExecStartRoundTrip(f *testing.F) {
	for _, s := range []string{"/bin/x", `/a "b"/c\d`, "100%$HOME", "", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\n\r\x00") {
			return
		}
		got, err := splitExecStart(systemdQuote(s) + " " + systemdQuote("x"))
		if err != nil || len(got) != 2 || got[0] != s || got[1] != "x" {
			t.Fatalf("round trip of %q = %q, %v", s, got, err)
		}
	})
}

var goldenMonitor = MonitorSpec{Binary: "/usr/local/bin/opensoul", StateDir: "/home/ada/.opensoul", Args: []string{"--ntfy", "https://ntfy.sh/ada-opensoul", "--exec", `logger -t "opensoul" 100%`}}

func TestGoldenMonitorUnits(t *testing.T) {
	t.Parallel()
	for _, goos := range []string{"linux", "darwin"} {
		s := newService(t, goos, &fakeRunner{})
		files, err := s.RenderMonitor(goldenMonitor)
		if err != nil {
			t.Fatal(err)
		}
		for path, got := range files {
			golden := filepath.Join("testdata", filepath.Base(path))
			if *update {
				os.WriteFile(golden, got, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", path, Diff(golden, want, got))
			}
		}
	}
}

func TestMonitorUnitsVerify(t *testing.T) {
	t.Parallel()
	tool := systemdAnalyze(t)
	bin, _ := os.Executable()
	state := t.TempDir()
	s := newService(t, "linux", &fakeRunner{})
	files, err := s.RenderMonitor(MonitorSpec{Binary: bin, StateDir: state, Args: goldenMonitor.Args})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for p, data := range files {
		paths = append(paths, filepath.Join(dir, filepath.Base(p)))
		os.WriteFile(paths[len(paths)-1], data, 0o600)
	}
	rt := t.TempDir()
	cmd := exec.Command(tool, append([]string{"verify", "--user", "--man=no"}, paths...)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "opensoul-monitor") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	timer := string(files[filepath.Join(filepath.Dir(s.Path()), "opensoul-monitor.timer")])
	for _, want := range []string{"\nOnBootSec=5min\n", "\nOnCalendar=*:0/30\n", "\nPersistent=true\n", "\nWantedBy=timers.target\n"} {
		if !strings.Contains(timer, want) {
			t.Errorf("timer lacks %q:\n%s", want, timer)
		}
	}
}

func TestMonitorPlistFields(t *testing.T) {
	t.Parallel()
	s := newService(t, "darwin", &fakeRunner{})
	files, _ := s.RenderMonitor(goldenMonitor)
	v, err := ReadPlist(files[s.MonitorPaths()[0]])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Label":             "ai.opensoul.monitor",
		"ProgramArguments":  []any{"/usr/local/bin/opensoul", "monitor", "--state-dir", "/home/ada/.opensoul", "--ntfy", "https://ntfy.sh/ada-opensoul", "--exec", `logger -t "opensoul" 100%`},
		"WorkingDirectory":  "/home/ada/.opensoul",
		"RunAtLoad":         true,
		"StartInterval":     int64(1800),
		"StandardOutPath":   "/home/ada/.opensoul/logs/monitor.log",
		"StandardErrorPath": "/home/ada/.opensoul/logs/monitor.log",
	}
	if !reflect.DeepEqual(v, any(want)) {
		t.Errorf("plist = %#v\nwant %#v", v, want)
	}
}

func TestMonitorLifecycle(t *testing.T) {
	t.Parallel()
	f := &fakeRunner{}
	s := newService(t, "linux", f)
	ctx := context.Background()
	spec := MonitorSpec{Binary: "/bin/opensoul", StateDir: t.TempDir(), Args: []string{"--desktop"}}
	if err := s.UninstallMonitor(ctx); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("uninstall before install: %v", err)
	}
	if _, err := s.InstallMonitor(ctx, spec, false); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.take(), "systemctl --user daemon-reload", "systemctl --user enable --now opensoul-monitor.timer")
	spec.Args = []string{"--stdout"}
	_, err := s.InstallMonitor(ctx, spec, false)
	var ce *ChangedError
	if !errors.As(err, &ce) || !strings.Contains(ce.Diff, `+ExecStart="/bin/opensoul" "monitor" "--state-dir"`) || len(f.take()) != 0 {
		t.Fatalf("changed monitor install: %v", err)
	}
	if _, err := s.InstallMonitor(ctx, spec, true); err != nil {
		t.Fatal(err)
	}
	f.take()
	if err := s.UninstallMonitor(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f.take(), "systemctl --user disable --now opensoul-monitor.timer", "systemctl --user daemon-reload")
	for _, p := range s.MonitorPaths() {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there", p)
		}
	}
}
