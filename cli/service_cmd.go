package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/service"
)

// serviceCmds are `gateway install|uninstall|status|restart|logs`.
func (a *app) serviceCmds() []*ffcli.Command {
	return []*ffcli.Command{a.installCmd(), a.uninstallCmd(), a.statusServiceCmd(), a.restartCmd(), a.logsCmd()}
}

// service returns this machine's service manager.
func (a *app) service() (*service.Service, error) {
	home := a.environ["HOME"]
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("cannot find a home directory for the service unit: %w", err)
		}
		home = h
	}
	r := service.ExecRunner()
	if a.svcRunner != nil {
		r = *a.svcRunner
	}
	return service.New(service.Options{GOOS: cmp.Or(a.goos, runtime.GOOS), Home: home, UID: os.Getuid(), Runner: r})
}

// serviceSpec is what install writes: this binary, the state dir, the
// config file when it is not the default one, --listen, and the drain.
func (a *app) serviceSpec(listen string) (service.Spec, error) {
	if err := a.load(); err != nil {
		return service.Spec{}, err
	}
	spec := service.Spec{Binary: cmp.Or(a.binary, thisBinary()), StateDir: a.st.Dir, Listen: listen, Drain: ms(a.cfg.Gateway.Timeouts.DrainMs)}
	if a.cfgFile != filepath.Join(a.st.Dir, "opensoul.yaml") {
		abs, err := filepath.Abs(a.cfgFile)
		if err != nil {
			return spec, err
		}
		spec.Config = abs
	}
	return spec, nil
}

func (a *app) installCmd() *ffcli.Command {
	fs := a.flagSet("gateway install")
	listen := fs.String("listen", "", "address the service listens on (default gateway.listen from the config)")
	force := fs.Bool("force", false, "replace an installed unit that differs from the one install writes")
	return leaf(&ffcli.Command{
		Name:       "install",
		ShortUsage: "opensoul gateway install [--listen ADDR] [--force]",
		ShortHelp:  "Run the gateway as a user service (systemd on Linux, launchd on macOS).",
		LongHelp: `Writes a systemd user unit (~/.config/systemd/user/opensoul-gateway.service)
or a launchd agent (~/Library/LaunchAgents/ai.opensoul.gateway.plist) that
runs this binary with this state dir, restarts it when it fails, and
stops it with the gateway's drain (gateway.timeouts.drainMs). Then it
enables and starts the service.

No secret is written into the unit: the service reads <state>/.env, so put
provider keys and OPENSOUL_GATEWAY_TOKEN there (` + "`opensoul doctor`" + ` says
which of your shell's keys the service would miss). A unit that differs
from what install would write (edited, or for another binary) is left
alone and the difference shown, unless --force.

Examples:
  opensoul gateway install
  opensoul gateway install --listen 127.0.0.1:9000 --force
  opensoul gateway status`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("install takes no arguments, got %q", args)}
			}
			return a.install(ctx, *listen, *force)
		},
	})
}

func (a *app) install(ctx context.Context, listen string, force bool) error {
	if listen != "" {
		if _, _, err := net.SplitHostPort(listen); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--listen: want host:port, got %q", listen)}
		}
	}
	svc, err := a.service()
	if err != nil {
		return err
	}
	spec, err := a.serviceSpec(listen)
	if err != nil {
		return err
	}
	if err := installable(spec.Binary); err != nil {
		return err
	}
	if err := a.st.EnsureDir(); err != nil {
		return fmt.Errorf("state dir %s: %w", a.st.Dir, err)
	}
	verb, err := a.installResult(svc.Install(ctx, spec, force))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s the %s %s\n  runs: %s\nStarted it. Secrets are not in the unit: the gateway reads %s.\n%s\nSee it with: opensoul gateway status\n",
		verb, svc.Kind(), svc.Path(), strings.Join(spec.Args(), " "), filepath.Join(spec.StateDir, ".env"), svc.Hint())
	return nil
}

// installResult words an install's outcome: "Installed" or "Already
// installed", or the diff (on stderr) of a changed unit left alone.
func (a *app) installResult(unchanged bool, err error) (verb string, _ error) {
	var ce *service.ChangedError
	if errors.As(err, &ce) {
		fmt.Fprint(a.stderr, ce.Diff)
		return "", fmt.Errorf("%s differs from what install would write (diff above); rerun with --force to replace it", ce.Path)
	}
	if err != nil {
		return "", err
	}
	if unchanged {
		return "Already installed", nil
	}
	return "Installed", nil
}

// installable refuses a binary a unit cannot keep running: a temporary
// `go run` build is deleted when go run exits.
func installable(bin string) error {
	if bin == "" || strings.Contains(bin, string(filepath.Separator)+"go-build") {
		return fmt.Errorf("this binary (%s) is a temporary `go run` build; build or install opensoul (go install ., or go build -o ~/bin/opensoul .) and run install from that binary", bin)
	}
	return nil
}

func (a *app) uninstallCmd() *ffcli.Command {
	fs := a.flagSet("gateway uninstall")
	return leaf(&ffcli.Command{
		Name:       "uninstall",
		ShortUsage: "opensoul gateway uninstall",
		ShortHelp:  "Stop the gateway service and remove its unit (state and credentials stay).",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			svc, err := a.service()
			if err != nil {
				return err
			}
			path := svc.Path()
			if err := svc.Uninstall(ctx); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Stopped the gateway and removed %s. The state dir is untouched.\n", path)
			return nil
		},
	})
}

func (a *app) restartCmd() *ffcli.Command {
	fs := a.flagSet("gateway restart")
	return leaf(&ffcli.Command{
		Name:       "restart",
		ShortUsage: "opensoul gateway restart",
		ShortHelp:  "Restart the gateway service (after a new binary, gateway.listen or log.format).",
		LongHelp: `Restarts the installed service; the old process drains first. Config,
.env and policy edits apply without a restart; the gateway's log (and
` + "`opensoul gateway status`" + `) says when a change needs one.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			svc, err := a.service()
			if err != nil {
				return err
			}
			if err := svc.Restart(ctx); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Restarted the gateway service. See it with: opensoul gateway status")
			return nil
		},
	})
}

func (a *app) logsCmd() *ffcli.Command {
	fs := a.flagSet("gateway logs")
	follow := fs.Bool("f", false, "keep printing new lines (until Ctrl-C)")
	lines := fs.Int("n", 100, "number of recent lines")
	return leaf(&ffcli.Command{
		Name:       "logs",
		ShortUsage: "opensoul gateway logs [-f] [-n LINES]",
		ShortHelp:  "Show the gateway service's log (journalctl on Linux, <state>/logs/gateway.log on macOS).",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			svc, err := a.service()
			if err != nil {
				return err
			}
			spec, err := a.serviceSpec("")
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return svc.Logs(ctx, spec, a.stdout, *lines, *follow)
		},
	})
}

// serviceStatus is `gateway status`: what is installed, what runs, and
// where they differ.
type serviceStatus struct {
	Manager   string `json:"manager"`
	Unit      string `json:"unit"`
	Installed bool   `json:"installed"`
	// UnitCurrent: the unit is what install would write now (binary,
	// state dir, drain); false means `gateway install` shows a diff.
	UnitCurrent bool   `json:"unitCurrent"`
	Binary      string `json:"binary,omitempty"` // what the unit runs
	State       string `json:"state"`
	Running     bool   `json:"running"`
	PID         int    `json:"pid,omitempty"`
	Listen      string `json:"listen"`
	Readyz      string `json:"readyz"`
	// Differences: why the running gateway is not what is installed or
	// configured; each one means a restart or a reinstall.
	Differences []string `json:"differences"`
	Problems    []string `json:"problems"` // last warning and error lines of its log
}

func (a *app) statusServiceCmd() *ffcli.Command {
	fs := a.flagSet("gateway status")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "status",
		ShortUsage: "opensoul gateway status [--json]",
		ShortHelp:  "Is the gateway service installed and running, and is it what is installed?",
		LongHelp: `Shows the unit, whether it runs (pid), the address it listens on, what
its /readyz says, the last warning and error lines of its log, and
whether the running gateway differs from what is installed or configured:
another binary, a binary replaced since it started, a unit older than
what install would write, or a config change that needs a restart.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			st, err := a.serviceStatus(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(a.stdout, st)
			}
			a.printServiceStatus(st)
			return nil
		},
	})
}

func (a *app) serviceStatus(ctx context.Context) (serviceStatus, error) {
	svc, err := a.service()
	if err != nil {
		return serviceStatus{}, err
	}
	spec, err := a.serviceSpec("")
	if err != nil {
		return serviceStatus{}, err
	}
	st := serviceStatus{Manager: svc.Kind(), Unit: svc.Path(), Differences: []string{}, Problems: []string{}, Listen: a.cfg.Gateway.Listen}
	installed, err := svc.InstalledArgs()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
	case err != nil:
		return st, err
	default:
		st.Installed = true
		st.Binary = installed[0]
		spec.Listen = flagValue(installed, "--listen")
		if spec.Listen != "" {
			st.Listen = spec.Listen
		}
		want, _ := svc.Render(spec)
		have, _ := svc.Installed()
		st.UnitCurrent = string(want) == string(have)
		if st.Binary != spec.Binary {
			st.Differences = append(st.Differences, fmt.Sprintf("the unit runs %s; this command is %s (`opensoul gateway install --force` from the binary you want)", st.Binary, spec.Binary))
		} else if !st.UnitCurrent {
			st.Differences = append(st.Differences, "the unit differs from what install would write now (`opensoul gateway install` shows how)")
		}
		if ms, err := svc.State(ctx); err != nil {
			st.State = "unknown: " + err.Error() // no user manager to ask, say
		} else {
			st.State, st.Running, st.PID = ms.Active, ms.Running, ms.PID
		}
		if p, err := svc.Problems(ctx, spec, 5); err == nil {
			st.Problems = append(st.Problems, p...)
		} else {
			st.Problems = append(st.Problems, "cannot read the log: "+err.Error())
		}
	}
	a.compareRunning(&st, spec)
	st.Readyz = probeReadyz(ctx, st.Listen)
	return st, nil
}

// compareRunning reads the running gateway's run file: the address it
// really listens on, and what it runs that differs from what is installed.
func (a *app) compareRunning(st *serviceStatus, spec service.Spec) {
	run, ok, err := readRunInfo(spec.StateDir)
	if err != nil {
		st.Differences = append(st.Differences, err.Error())
		return
	}
	if !ok || !processAlive(run.PID) || (st.Running && run.PID != st.PID) {
		return
	}
	if !st.Installed {
		st.State, st.Running, st.PID = "running outside the service manager", true, run.PID
	}
	st.Listen = run.Addr
	st.Differences = append(st.Differences, run.Restart...)
	if st.Installed && run.Binary != "" && run.Binary != st.Binary {
		st.Differences = append(st.Differences, fmt.Sprintf("the running gateway is %s, the unit runs %s: run `opensoul gateway restart`", run.Binary, st.Binary))
	}
	if fi, err := os.Stat(run.Binary); err == nil && fi.ModTime().After(run.Started) {
		st.Differences = append(st.Differences, fmt.Sprintf("%s changed since the gateway started at %s: run `opensoul gateway restart`", run.Binary, run.Started.Local().Format(time.DateTime)))
	}
	if abs, _ := filepath.Abs(a.cfgFile); run.Config != "" && run.Config != a.cfgFile && run.Config != abs {
		st.Differences = append(st.Differences, fmt.Sprintf("the running gateway reads %s, this command %s", run.Config, a.cfgFile))
	}
}

// flagValue returns the value after flag in args, or "".
func flagValue(args []string, flag string) string {
	for i, s := range args {
		if s == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(s, flag+"="); ok {
			return v
		}
	}
	return ""
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}

// probeReadyz asks the gateway's /readyz (no token needed).
func probeReadyz(ctx context.Context, listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "unknown address " + strconv.Quote(listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "unreachable"
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "ready"
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if why := strings.TrimSpace(string(body)); why != "" {
		return fmt.Sprintf("not ready (%d: %s)", resp.StatusCode, why)
	}
	return fmt.Sprintf("not ready (%s)", resp.Status)
}

func (a *app) printServiceStatus(st serviceStatus) {
	w := a.stdout
	if st.Installed {
		fmt.Fprintf(w, "service:  %s %s\n  runs:   %s\n", st.Manager, st.Unit, st.Binary)
	} else {
		fmt.Fprintf(w, "service:  not installed (%s %s; `opensoul gateway install`)\n", st.Manager, st.Unit)
	}
	state := cmp.Or(st.State, "not running")
	if st.Running {
		state += fmt.Sprintf(", pid %d", st.PID)
	}
	fmt.Fprintf(w, "state:    %s\nlisten:   %s\nreadyz:   %s\n", state, st.Listen, st.Readyz)
	for _, d := range st.Differences {
		fmt.Fprintf(w, "differs:  %s\n", d)
	}
	if len(st.Problems) > 0 {
		fmt.Fprintln(w, "last warnings and errors:")
		for _, p := range st.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}
