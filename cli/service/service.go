// Package service installs the OpenSoul gateway as a per-user background
// service: a systemd user unit on Linux (systemd.go) and a launchd agent on
// macOS (launchd.go). It writes the unit file, asks the service manager to
// load, start, restart or remove it, and reads back what the manager knows
// (running, pid, recent error lines).
//
// Every call to systemctl, launchctl, journalctl or tail goes through a
// Runner, so tests drive the whole install → status → uninstall path with
// a fake one against a temporary HOME. Unit files never hold a secret: the
// gateway reads <state>/.env itself, so a key rotated there needs no
// reinstall.
package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/opensoul/opensoul/gateway/store"
)

// ErrUnsupported: this OS has no service manager that install knows.
var ErrUnsupported = errors.New("no supported service manager")

// ErrNotInstalled: the unit file is not there.
var ErrNotInstalled = errors.New("not installed")

// stopMargin is how long the service manager waits, beyond the gateway's
// own drain, before it kills the process: closing the store and the module
// host after the drain takes a moment.
const stopMargin = 10 * time.Second

// Spec is what the installed service runs.
type Spec struct {
	Binary   string        // absolute path of the opensoul binary
	StateDir string        // absolute state dir, passed as --state-dir
	Config   string        // --config when not <state>/opensoul.yaml; "" otherwise
	Listen   string        // --listen; "" means gateway.listen from the config
	Drain    time.Duration // gateway.timeouts.drainMs: SIGTERM starts a drain this long
}

// Args is the command line the service runs.
func (s Spec) Args() []string {
	args := []string{s.Binary, "gateway", "--state-dir", s.StateDir}
	if s.Config != "" {
		args = append(args, "--config", s.Config)
	}
	if s.Listen != "" {
		args = append(args, "--listen", s.Listen)
	}
	return args
}

// StopTimeout is how long the manager waits after SIGTERM: the drain plus
// a margin, rounded up to whole seconds.
func (s Spec) StopTimeout() time.Duration {
	return (s.Drain + stopMargin + time.Second - 1).Truncate(time.Second)
}

// Runner runs the service manager's commands. Output returns the
// command's stdout (stderr folded into the error); Stream copies a
// long-running command's output to w until ctx ends.
type Runner struct {
	Output func(ctx context.Context, name string, args ...string) ([]byte, error)
	Stream func(ctx context.Context, w io.Writer, name string, args ...string) error
}

// ExecRunner runs the real commands.
func ExecRunner() Runner {
	return Runner{
		Output: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
					return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
				}
				return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
			}
			return out, nil
		},
		Stream: func(ctx context.Context, w io.Writer, name string, args ...string) error {
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Stdout, cmd.Stderr = w, w
			if err := cmd.Run(); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		},
	}
}

// backend is one service manager. There are two, one file each.
type backend interface {
	kind() string                        // "systemd user unit", "launchd agent"
	path() string                        // where the unit file goes
	render(Spec) ([]byte, error)         // the unit file for spec
	args(unit []byte) ([]string, error)  // the command line an installed unit runs
	activate(ctx context.Context) error  // load the written unit, enable it and (re)start it
	uninstall(ctx context.Context) error // stop, unload and remove the unit file
	restart(ctx context.Context) error
	state(ctx context.Context) (State, error)
	logs(ctx context.Context, s Spec, w io.Writer, lines int, follow bool) error
	recent(ctx context.Context, s Spec, lines int) ([]string, error) // last log lines, oldest first
	hint() string                                                    // what the user should know after install
	environ(ctx context.Context) (map[string]string, error)          // what the manager passes to the service
	monitorBackend
}

// Service is the gateway's service on one machine.
type Service struct {
	b backend
}

// Options picks the backend.
type Options struct {
	GOOS   string // runtime.GOOS, or another for tests
	Home   string // the user's home directory
	UID    int    // launchd's gui/<uid> domain
	Runner Runner
}

// New returns the service for opts.GOOS, or an error wrapping
// ErrUnsupported that says what to do instead.
func New(opts Options) (*Service, error) {
	if opts.Home == "" {
		return nil, errors.New("service: no home directory")
	}
	switch opts.GOOS {
	case "linux":
		return &Service{b: &systemd{home: opts.Home, run: opts.Runner}}, nil
	case "darwin":
		return &Service{b: &launchd{home: opts.Home, uid: opts.UID, run: opts.Runner}}, nil
	}
	return nil, fmt.Errorf("%w on %s: install knows systemd (Linux) and launchd (macOS); run `opensoul gateway` under your own supervisor, sending SIGTERM to stop it", ErrUnsupported, opts.GOOS)
}

// Kind names the service manager ("systemd user unit").
func (s *Service) Kind() string { return s.b.kind() }

// Path is where the unit file goes.
func (s *Service) Path() string { return s.b.path() }

// Hint says what the user should know once installed.
func (s *Service) Hint() string { return s.b.hint() }

// Render returns the unit file install would write for spec.
func (s *Service) Render(spec Spec) ([]byte, error) { return s.b.render(spec) }

// ChangedError: the installed unit differs from the one install would
// write, and install was not forced. Diff is a unified diff from the
// installed file to the new one.
type ChangedError struct {
	Path string
	Diff string
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("%s differs from what install would write (it was edited, or written for another binary or state dir); rerun with --force to replace it:\n%s", e.Path, e.Diff)
}

// Installed reads the installed unit file; ErrNotInstalled when absent.
func (s *Service) Installed() ([]byte, error) {
	data, err := os.ReadFile(s.b.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the gateway service is %w (no %s; run `opensoul gateway install`)", ErrNotInstalled, s.b.path())
	}
	return data, err
}

// InstalledArgs is the command line of the installed unit.
func (s *Service) InstalledArgs() ([]string, error) {
	data, err := s.Installed()
	if err != nil {
		return nil, err
	}
	args, err := s.b.args(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.b.path(), err)
	}
	return args, nil
}

// Install writes the unit for spec and starts it. A unit that is there
// and differs is replaced only when force is set; otherwise Install
// returns a *ChangedError carrying the diff. Unchanged reports that the
// file was already what install writes (the service is still started).
func (s *Service) Install(ctx context.Context, spec Spec, force bool) (unchanged bool, err error) {
	want, err := s.b.render(spec)
	if err != nil {
		return false, err
	}
	have, err := s.Installed()
	switch {
	case errors.Is(err, ErrNotInstalled):
	case err != nil:
		return false, err
	case bytes.Equal(have, want):
		unchanged = true
	case !force:
		return false, &ChangedError{Path: s.b.path(), Diff: Diff(s.b.path(), have, want)}
	}
	// The unit's working directory, and launchd's log directory.
	if err := os.MkdirAll(filepath.Dir(logFile(spec)), 0o700); err != nil {
		return false, err
	}
	if !unchanged {
		if err := writeUnit(s.b.path(), want); err != nil {
			return false, err
		}
	}
	if err := s.b.activate(ctx); err != nil {
		return unchanged, fmt.Errorf("wrote %s, but the service manager did not start it (no user session or manager here?): %w", s.b.path(), err)
	}
	return unchanged, nil
}

// Uninstall stops the service and removes its unit file.
func (s *Service) Uninstall(ctx context.Context) error {
	if _, err := s.Installed(); err != nil {
		return err
	}
	return s.b.uninstall(ctx)
}

// Restart restarts the installed service (starting it if stopped).
func (s *Service) Restart(ctx context.Context) error {
	if _, err := s.Installed(); err != nil {
		return err
	}
	return s.b.restart(ctx)
}

// Environ is the environment the service manager gives the service: the
// systemd user manager's environment (the unit adds none), or nothing for
// a launchd agent, which gets no keys from the user's shell.
func (s *Service) Environ(ctx context.Context) (map[string]string, error) { return s.b.environ(ctx) }

// State is what the service manager says about the service.
type State struct {
	Active  string    // the manager's word: active, inactive, failed, running, …
	Running bool      // a process is up
	PID     int       // 0 when not running
	Since   time.Time // when the process started; zero when unknown
}

// State asks the service manager.
func (s *Service) State(ctx context.Context) (State, error) { return s.b.state(ctx) }

// Logs copies the last lines of the gateway's log to w, following new
// lines until ctx ends when follow is set.
func (s *Service) Logs(ctx context.Context, spec Spec, w io.Writer, lines int, follow bool) error {
	return s.b.logs(ctx, spec, w, lines, follow)
}

// Problems returns the last n warning and error lines of the gateway's
// log, oldest first, out of its recent output.
func (s *Service) Problems(ctx context.Context, spec Spec, n int) ([]string, error) {
	lines, err := s.b.recent(ctx, spec, 400)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range lines {
		if isProblem(l) {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// isProblem: a slog WARN or ERROR line (text or JSON), the CLI's own
// "opensoul: …" failure, or the service manager saying the process failed.
func isProblem(line string) bool {
	for _, m := range []string{"level=WARN", "level=ERROR", `"level":"WARN"`, `"level":"ERROR"`, "opensoul: ", "Failed with result", "status=1/FAILURE", "code=exited, status="} {
		if bytes.Contains([]byte(line), []byte(m)) {
			return true
		}
	}
	return false
}

// Diff is a unified diff from have to want, labelled with path.
func Diff(path string, have, want []byte) string {
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(have)), B: difflib.SplitLines(string(want)),
		FromFile: path + " (installed)", ToFile: path + " (new)", Context: 2,
	})
	if err != nil {
		return err.Error()
	}
	return d
}

// writeUnit writes a unit file atomically. It holds no secret, but 0600
// in a 0700 directory costs nothing: only the user's own manager reads it.
func writeUnit(path string, data []byte) error {
	if err := store.WriteFileAtomic(path, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// MonitorSpec is the periodic `opensoul monitor` run.
type MonitorSpec struct {
	Binary   string
	StateDir string
	Config   string   // --config when not <state>/opensoul.yaml
	Args     []string // the notifier flags
}

// Argv is the command line each run executes.
func (m MonitorSpec) Argv() []string {
	args := []string{m.Binary, "monitor", "--state-dir", m.StateDir}
	if m.Config != "" {
		args = append(args, "--config", m.Config)
	}
	return append(args, m.Args...)
}

// The monitor runs 5 minutes after boot (or login) and every 30 minutes.
const (
	monitorBootDelay = 5 * time.Minute
	monitorEvery     = 30 * time.Minute
)

// unitFile is one file of a unit set.
type unitFile struct {
	path string
	data []byte
}

// monitorBackend is what a backend adds for the periodic monitor.
type monitorBackend interface {
	monitorFiles(MonitorSpec) ([]unitFile, error)
	activateMonitor(ctx context.Context) error
	uninstallMonitor(ctx context.Context) error
}

// MonitorPaths are the monitor's unit files.
func (s *Service) MonitorPaths() []string {
	files, _ := s.b.monitorFiles(MonitorSpec{Binary: "/x", StateDir: "/x"})
	var out []string
	for _, f := range files {
		out = append(out, f.path)
	}
	return out
}

// RenderMonitor returns the monitor's unit files, path → content.
func (s *Service) RenderMonitor(spec MonitorSpec) (map[string][]byte, error) {
	files, err := s.b.monitorFiles(spec)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range files {
		out[f.path] = f.data
	}
	return out, nil
}

// InstallMonitor writes the monitor's units and starts its schedule, with
// Install's rules: a changed file is replaced only when force is set.
func (s *Service) InstallMonitor(ctx context.Context, spec MonitorSpec, force bool) (unchanged bool, err error) {
	mb := s.b
	files, err := mb.monitorFiles(spec)
	if err != nil {
		return false, err
	}
	unchanged = true
	var diffs []string
	var changed []string
	for _, f := range files {
		have, err := os.ReadFile(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			unchanged = false
		case err != nil:
			return false, err
		case !bytes.Equal(have, f.data):
			unchanged = false
			diffs = append(diffs, Diff(f.path, have, f.data))
			changed = append(changed, f.path)
		}
	}
	if len(diffs) > 0 && !force {
		return false, &ChangedError{Path: strings.Join(changed, ", "), Diff: strings.Join(diffs, "")}
	}
	if err := os.MkdirAll(filepath.Dir(logFile(Spec{StateDir: spec.StateDir})), 0o700); err != nil {
		return false, err
	}
	for _, f := range files {
		if err := writeUnit(f.path, f.data); err != nil {
			return false, err
		}
	}
	return unchanged, mb.activateMonitor(ctx)
}

// UninstallMonitor stops the schedule and removes the monitor's units.
func (s *Service) UninstallMonitor(ctx context.Context) error {
	for _, p := range s.MonitorPaths() {
		if _, err := os.Stat(p); err == nil {
			return s.b.uninstallMonitor(ctx)
		}
	}
	return fmt.Errorf("the monitor is %w (run `opensoul monitor install`)", ErrNotInstalled)
}
