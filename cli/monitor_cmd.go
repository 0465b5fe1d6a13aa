package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/monitor"
	"github.com/opensoul/opensoul/cli/service"
	"github.com/opensoul/opensoul/gateway"
)

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// monitorFlags are the notifier choices, shared by monitor and monitor install.
type monitorFlags struct {
	ntfy, webhook, execs listFlag
	desktop, stdout      bool
}

// register adds the notifier flags to fs.
func (m *monitorFlags) register(fs *flag.FlagSet) {
	fs.Var(&m.ntfy, "ntfy", "POST alerts to this ntfy-style topic URL (repeatable)")
	fs.Var(&m.webhook, "webhook", "POST alerts as JSON to this URL (repeatable)")
	fs.Var(&m.execs, "exec", "run this shell command per alert: text on stdin, OPENSOUL_ALERT_* variables (repeatable)")
	fs.BoolVar(&m.desktop, "desktop", false, "desktop notification (notify-send on Linux, osascript on macOS)")
	fs.BoolVar(&m.stdout, "stdout", false, "print alerts to stdout")
}

func (a *app) monitorCmd() *ffcli.Command {
	fs := a.flagSet("monitor")
	var m monitorFlags
	m.register(fs)
	format := fs.String("format", "text", "output: text, simple (one line per problem, or OK) or json")
	return leaf(&ffcli.Command{
		Name:       "monitor",
		ShortUsage: "opensoul monitor [--ntfy URL] [--webhook URL] [--exec CMD] [--desktop] [--stdout] [--format text|simple|json]",
		ShortHelp:  "Check every agent's credentials and alert when something needs you.",
		LongHelp: `Asks, for every agent, what ` + "`models status --check`" + ` asks (gateway/health.go):
a token or login expired or expiring within 24h, a profile without a usable
secret or rejected by its provider module, a model in use that nothing can
serve (no credential, every profile disabled) or whose every candidate is
cooling down. Exits 0 when all is well, 1 when something needs a person,
2 when something needs attention soon.

With notifiers, it alerts on a change: a new problem at once, the same
problem again at most once an hour, and one "resolved" message when it
is gone (state in <state>/monitor-state.json). Several notifiers may be
combined; alerts carry profile ids and fixes, never a secret.

--format simple prints OK, or one line per problem, worst first:
  EXPIRED <profile>    EXPIRING <profile> <time left>    INVALID <profile>
  MISSING <profile or provider/model>    DISABLED|COOLING <provider/model>
(<agent>/<subject> for agents other than the default), for widgets and
scripts. ` + "`opensoul monitor install`" + ` runs it every 30 minutes.

Examples:
  opensoul monitor --format simple
  opensoul monitor --ntfy https://ntfy.sh/my-opensoul-topic --desktop
  opensoul monitor --webhook http://127.0.0.1:9000/hook --exec 'logger -t opensoul'`,
		FlagSet:     fs,
		Subcommands: a.monitorServiceCmds(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("monitor takes no arguments, got %q (subcommands: install, uninstall)", args)}
			}
			return a.monitor(ctx, m, *format)
		},
	})
}

func (a *app) monitor(ctx context.Context, m monitorFlags, format string) error {
	if format != "text" && format != "simple" && format != "json" {
		return &exitError{code: 2, err: fmt.Errorf("--format: want text, simple or json, got %q", format)}
	}
	now := a.now()
	if err := a.load(); err != nil {
		return err
	}
	h := a.monitorHost()
	problems, err := h.Problems(ctx, now)
	if err != nil {
		return err
	}
	ns, err := a.notifiers(m, now)
	if err != nil {
		return err
	}
	if len(ns) > 0 {
		if err := h.RunAlerts(ctx, ns, problems, now); err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
	}
	code := monitor.ExitCode(problems)
	a.writeMonitor(format, problems, code, now)
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func (a *app) writeMonitor(format string, problems []monitor.Problem, code int, now time.Time) {
	def := a.cfg.Agents.Default
	switch format {
	case "json":
		writeJSON(a.stdout, map[string]any{"status": []string{"ok", "problem", "expiring"}[code], "exitCode": code, "problems": append([]monitor.Problem{}, problems...)})
	case "simple":
		if len(problems) == 0 {
			fmt.Fprintln(a.stdout, "OK")
		}
		for _, p := range problems {
			fmt.Fprintln(a.stdout, p.Simple(def, now))
		}
	default:
		if len(problems) == 0 {
			fmt.Fprintln(a.stdout, "OK: every agent's credentials are usable.")
		}
		for _, p := range problems {
			fmt.Fprintf(a.stdout, "%s\n  fix: %s\n", p.Message, p.Fix)
		}
	}
}

// notifiers builds the chosen notifiers.
func (a *app) notifiers(m monitorFlags, now time.Time) ([]monitor.Notifier, error) {
	client := &http.Client{Timeout: monitor.NotifyTimeout}
	var ns []monitor.Notifier
	for _, u := range m.ntfy {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, &exitError{code: 2, err: fmt.Errorf("--ntfy: want an http(s) topic URL, got %q", u)}
		}
		ns = append(ns, monitor.Ntfy(client, u))
	}
	for _, u := range m.webhook {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, &exitError{code: 2, err: fmt.Errorf("--webhook: want an http(s) URL, got %q", u)}
		}
		ns = append(ns, monitor.Webhook(client, u, now))
	}
	for _, c := range m.execs {
		ns = append(ns, monitor.Exec(c))
	}
	if m.desktop {
		ns = append(ns, monitor.Desktop(cmp.Or(a.goos, runtime.GOOS)))
	}
	if m.stdout {
		ns = append(ns, monitor.Stdout(a.stdout))
	}
	for i := range ns {
		ns[i] = monitor.WithTimeout(ns[i])
	}
	return ns, nil
}

// args turns the flags back into a command line, for monitor install.
func (m monitorFlags) args() []string {
	var out []string
	for _, u := range m.ntfy {
		out = append(out, "--ntfy", u)
	}
	for _, u := range m.webhook {
		out = append(out, "--webhook", u)
	}
	for _, c := range m.execs {
		out = append(out, "--exec", c)
	}
	if m.desktop {
		out = append(out, "--desktop")
	}
	if m.stdout {
		out = append(out, "--stdout")
	}
	return out
}

// monitorServiceCmds are `monitor install|uninstall`.
func (a *app) monitorServiceCmds() []*ffcli.Command {
	fs := a.flagSet("monitor install")
	var m monitorFlags
	m.register(fs)
	force := fs.Bool("force", false, "replace installed units that differ from the ones install writes")
	install := leaf(&ffcli.Command{
		Name:       "install",
		ShortUsage: "opensoul monitor install [--ntfy URL] [--webhook URL] [--exec CMD] [--desktop] [--force]",
		ShortHelp:  "Run the monitor every 30 minutes (systemd user timer or launchd interval job).",
		LongHelp: `Installs a systemd user timer (opensoul-monitor.timer: 5 minutes after
boot, then every 30 minutes, catching up a run missed while the machine
was off) or a launchd interval job (ai.opensoul.monitor: at login and
every 30 minutes) that runs ` + "`opensoul monitor`" + ` with the notifiers given here.

Examples:
  opensoul monitor install --ntfy https://ntfy.sh/my-opensoul-topic
  opensoul monitor install --desktop --exec 'logger -t opensoul'`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			return a.installMonitor(ctx, m, *force)
		},
	})
	ufs := a.flagSet("monitor uninstall")
	uninstall := leaf(&ffcli.Command{
		Name:       "uninstall",
		ShortUsage: "opensoul monitor uninstall",
		ShortHelp:  "Remove the monitor's timer or interval job.",
		FlagSet:    ufs,
		Exec: func(ctx context.Context, args []string) error {
			svc, err := a.service()
			if err != nil {
				return err
			}
			if err := svc.UninstallMonitor(ctx); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removed %s.\n", strings.Join(svc.MonitorPaths(), " and "))
			return nil
		},
	})
	return []*ffcli.Command{install, uninstall}
}

func (a *app) installMonitor(ctx context.Context, m monitorFlags, force bool) error {
	if len(m.args()) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("name at least one notifier: --ntfy URL, --webhook URL, --exec CMD or --desktop")}
	}
	if _, err := a.notifiers(m, a.now()); err != nil {
		return err
	}
	svc, err := a.service()
	if err != nil {
		return err
	}
	spec, err := a.serviceSpec("")
	if err != nil {
		return err
	}
	if err := installable(spec.Binary); err != nil {
		return err
	}
	ms := service.MonitorSpec{Binary: spec.Binary, StateDir: spec.StateDir, Config: spec.Config, Args: m.args()}
	verb, err := a.installResult(svc.InstallMonitor(ctx, ms, force))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s %s\n  runs: %s\nTry it now: %s\n", verb, strings.Join(svc.MonitorPaths(), " and "), strings.Join(ms.Argv(), " "), strings.Join(append([]string{"opensoul", "monitor"}, m.args()...), " "))
	return nil
}

// monitorHost wires the monitor to this app (cli/monitor never imports
// cli). The config must be loaded.
func (a *app) monitorHost() *monitor.Host {
	return &monitor.Host{
		Store: a.st, Agent: a.agentID, Warnf: a.warnf,
		Health: func(ctx context.Context, agent string, now time.Time) (string, *gateway.Health, error) {
			ag, snap, err := a.agentSnapshot(agent)
			if err != nil {
				return "", nil, err
			}
			h, err := a.health(ctx, snap, now)
			return ag, h, err
		},
	}
}
