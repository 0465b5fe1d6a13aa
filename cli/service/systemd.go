package service

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// unitName is the systemd user unit's name.
const unitName = "opensoul-gateway.service"

// systemd is a user unit under ~/.config/systemd/user, driven with
// `systemctl --user`; its log is the user journal.
type systemd struct {
	home string
	run  Runner
}

func (d *systemd) kind() string { return "systemd user unit" }

func (d *systemd) path() string {
	return filepath.Join(d.home, ".config", "systemd", "user", unitName)
}

func (d *systemd) hint() string {
	return "A user unit stops when you log out. To keep the gateway running after logout and start it at boot:\n  loginctl enable-linger \"$USER\""
}

// The unit: Restart=on-failure brings a crashed gateway back but leaves a
// clean stop alone; SIGTERM starts the gateway's own drain, and
// TimeoutStopSec gives that drain its full length before SIGKILL.
// KillMode=mixed sends SIGTERM to the gateway only, so its children (a
// login shell for env.shellEnv) don't die before it does.
var unitTmpl = template.Must(template.New("unit").Parse(`# Written by ` + "`opensoul gateway install`" + `; ` + "`opensoul gateway install --force`" + ` rewrites it.
# No secret belongs here: the gateway reads {{.EnvFile}} itself.
# To keep it running after logout: loginctl enable-linger "$USER"
[Unit]
Description=OpenSoul gateway (one local endpoint for your model credentials)
Documentation=https://github.com/opensoul/opensoul#running-as-a-service

[Service]
Type=simple
ExecStart={{.ExecStart}}
WorkingDirectory={{.WorkDir}}
Restart=on-failure
RestartSec=5
# SIGTERM drains in-flight requests for gateway.timeouts.drainMs ({{.Drain}}).
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={{.StopSec}}

[Install]
WantedBy=default.target
`))

func (d *systemd) render(s Spec) ([]byte, error) {
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	quoted := make([]string, 0, len(s.Args()))
	for _, a := range s.Args() {
		quoted = append(quoted, systemdQuote(a))
	}
	var b bytes.Buffer
	err := unitTmpl.Execute(&b, map[string]any{
		"EnvFile":   filepath.Join(s.StateDir, ".env"),
		"ExecStart": strings.Join(quoted, " "),
		"WorkDir":   systemdEscape(s.StateDir),
		"Drain":     s.Drain.String(),
		"StopSec":   int(s.StopTimeout() / time.Second),
	})
	return b.Bytes(), err
}

// checkSpec refuses what a unit file cannot carry.
func checkSpec(s Spec) error {
	if !filepath.IsAbs(s.Binary) || !filepath.IsAbs(s.StateDir) {
		return fmt.Errorf("service: binary %q and state dir %q must be absolute paths", s.Binary, s.StateDir)
	}
	for _, a := range s.Args() {
		if strings.ContainsAny(a, "\n\r\x00") {
			return fmt.Errorf("service: argument %q holds a line break", a)
		}
	}
	return nil
}

// systemdEscape doubles what systemd would expand: %specifiers and $VARS.
func systemdEscape(s string) string {
	return strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
}

// systemdQuote quotes one ExecStart word.
func systemdQuote(s string) string {
	return `"` + systemdEscape(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)) + `"`
}

// args reads ExecStart back, undoing systemdQuote (and accepting bare words).
func (d *systemd) args(unit []byte) ([]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ExecStart=")
		if !ok {
			continue
		}
		return splitExecStart(line)
	}
	return nil, errors.New("no ExecStart= line")
}

func splitExecStart(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case quoted && c == '"':
			quoted = false
		case !quoted && c == '"':
			quoted, inWord = true, true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case (c == '%' || c == '$') && i+1 < len(line) && line[i+1] == c:
			i++
			cur.WriteByte(c)
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("ExecStart: unterminated quote in %q", line)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

func (d *systemd) systemctl(ctx context.Context, args ...string) ([]byte, error) {
	return d.run.Output(ctx, "systemctl", append([]string{"--user"}, args...)...)
}

func (d *systemd) reload(ctx context.Context) error {
	_, err := d.systemctl(ctx, "daemon-reload")
	return err
}

// activate reloads the unit files, enables the unit for the next login
// and restarts it, so a rewritten unit takes effect now.
func (d *systemd) activate(ctx context.Context) error {
	if err := d.reload(ctx); err != nil {
		return err
	}
	if _, err := d.systemctl(ctx, "enable", unitName); err != nil {
		return err
	}
	_, err := d.systemctl(ctx, "restart", unitName)
	return err
}

func (d *systemd) uninstall(ctx context.Context) error {
	if _, err := d.systemctl(ctx, "disable", "--now", unitName); err != nil {
		return err
	}
	if err := os.Remove(d.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return d.reload(ctx)
}

func (d *systemd) restart(ctx context.Context) error {
	_, err := d.systemctl(ctx, "restart", unitName)
	return err
}

// state reads `systemctl --user show`: KEY=value lines.
func (d *systemd) state(ctx context.Context) (State, error) {
	out, err := d.systemctl(ctx, "show", unitName, "--property=ActiveState,SubState,MainPID,ExecMainStartTimestamp")
	if err != nil {
		return State{}, err
	}
	props := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			props[k] = v
		}
	}
	st := State{Active: props["ActiveState"]}
	if sub := props["SubState"]; sub != "" && sub != st.Active {
		st.Active += " (" + sub + ")"
	}
	st.PID, _ = strconv.Atoi(props["MainPID"])
	st.Running = st.PID > 0 && props["ActiveState"] == "active"
	if t, err := time.Parse("Mon 2006-01-02 15:04:05 MST", props["ExecMainStartTimestamp"]); err == nil {
		st.Since = t
	}
	return st, nil
}

func (d *systemd) journal(lines int, follow bool) []string {
	args := []string{"--user", "--unit", unitName, "--lines", strconv.Itoa(lines), "--no-pager", "--output", "cat"}
	if follow {
		args = append(args, "--follow")
	}
	return args
}

func (d *systemd) logs(ctx context.Context, _ Spec, w io.Writer, lines int, follow bool) error {
	return d.run.Stream(ctx, w, "journalctl", d.journal(lines, follow)...)
}

func (d *systemd) recent(ctx context.Context, _ Spec, lines int) ([]string, error) {
	out, err := d.run.Output(ctx, "journalctl", d.journal(lines, false)...)
	if err != nil {
		return nil, err
	}
	return nonEmptyLines(out), nil
}

func nonEmptyLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// environ reads `systemctl --user show-environment`: KEY=value lines.
func (d *systemd) environ(ctx context.Context) (map[string]string, error) {
	out, err := d.systemctl(ctx, "show-environment")
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" {
			env[k] = v
		}
	}
	return env, nil
}

// The monitor's units: a oneshot service that runs `opensoul monitor`
// and a timer. Exit 1 and 2 are monitor's findings, not failures.
const (
	monitorService = "opensoul-monitor.service"
	monitorTimer   = "opensoul-monitor.timer"
)

var monitorUnitTmpl = template.Must(template.New("monitor").Parse(`# Written by ` + "`opensoul monitor install`" + `; it runs the credential check and alerts.
[Unit]
Description=OpenSoul credential monitor (alerts when a login needs you)
Documentation=https://github.com/opensoul/opensoul#monitoring

[Service]
Type=oneshot
ExecStart={{.ExecStart}}
WorkingDirectory={{.WorkDir}}
# monitor exits 1 (something broken) and 2 (expiring soon) after alerting.
SuccessExitStatus=1 2
`))

var monitorTimerTmpl = template.Must(template.New("timer").Parse(`# Written by ` + "`opensoul monitor install`" + `.
[Unit]
Description=Run the OpenSoul credential monitor every {{.Every}}

[Timer]
OnBootSec={{.Boot}}
# Every {{.Every}} on the clock rather than OnUnitActiveSec=: Persistent=
# only acts on OnCalendar=, and it runs a check missed while the machine
# was off or asleep as soon as it is back.
OnCalendar=*:0/{{.Minutes}}
Persistent=true
Unit=` + monitorService + `

[Install]
WantedBy=timers.target
`))

func (d *systemd) monitorFiles(m MonitorSpec) ([]unitFile, error) {
	if err := checkSpec(Spec{Binary: m.Binary, StateDir: m.StateDir, Config: m.Config}); err != nil {
		return nil, err
	}
	quoted := make([]string, 0, len(m.Argv()))
	for _, a := range m.Argv() {
		if strings.ContainsAny(a, "\n\r\x00") {
			return nil, fmt.Errorf("service: argument %q holds a line break", a)
		}
		quoted = append(quoted, systemdQuote(a))
	}
	var svc, timer bytes.Buffer
	if err := monitorUnitTmpl.Execute(&svc, map[string]any{"ExecStart": strings.Join(quoted, " "), "WorkDir": systemdEscape(m.StateDir)}); err != nil {
		return nil, err
	}
	if err := monitorTimerTmpl.Execute(&timer, map[string]any{"Boot": systemdSpan(monitorBootDelay), "Every": systemdSpan(monitorEvery), "Minutes": int(monitorEvery / time.Minute)}); err != nil {
		return nil, err
	}
	dir := filepath.Dir(d.path())
	return []unitFile{{filepath.Join(dir, monitorService), svc.Bytes()}, {filepath.Join(dir, monitorTimer), timer.Bytes()}}, nil
}

// systemdSpan writes whole minutes the way systemd.time(7) reads them.
func systemdSpan(d time.Duration) string { return strconv.Itoa(int(d/time.Minute)) + "min" }

func (d *systemd) activateMonitor(ctx context.Context) error {
	if err := d.reload(ctx); err != nil {
		return err
	}
	_, err := d.systemctl(ctx, "enable", "--now", monitorTimer)
	return err
}

func (d *systemd) uninstallMonitor(ctx context.Context) error {
	if _, err := d.systemctl(ctx, "disable", "--now", monitorTimer); err != nil {
		return err
	}
	dir := filepath.Dir(d.path())
	for _, f := range []string{monitorTimer, monitorService} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return d.reload(ctx)
}
