package service

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// agentLabel is the launchd agent's label and file name.
const agentLabel = "ai.opensoul.gateway"

// launchd is an agent in ~/Library/LaunchAgents, loaded into the user's
// gui/<uid> domain. launchd keeps no journal, so the gateway's output goes
// to <state>/logs/gateway.log.
type launchd struct {
	home string
	uid  int
	run  Runner
}

func (l *launchd) kind() string { return "launchd agent" }

func (l *launchd) path() string {
	return filepath.Join(l.home, "Library", "LaunchAgents", agentLabel+".plist")
}

func (l *launchd) hint() string {
	return "launchd starts the agent at each login and restarts it when it fails."
}

func (l *launchd) target() string { return "gui/" + strconv.Itoa(l.uid) + "/" + agentLabel }

// logFile is where the agent's stdout and stderr go.
func logFile(s Spec) string { return filepath.Join(s.StateDir, "logs", "gateway.log") }

// render writes the plist. KeepAlive{SuccessfulExit: false} restarts a
// gateway that failed and leaves a clean stop alone (Restart=on-failure);
// ExitTimeOut is the drain plus a margin before SIGKILL.
func (l *launchd) render(s Spec) ([]byte, error) {
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	p := newPlist("Written by `opensoul gateway install`. No secret belongs here: the gateway reads " + filepath.Join(s.StateDir, ".env") + " itself.")
	p.str("Label", agentLabel)
	p.strs("ProgramArguments", s.Args())
	p.str("WorkingDirectory", s.StateDir)
	p.value("RunAtLoad", "<true/>")
	p.value("KeepAlive", "<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>")
	p.integer("ExitTimeOut", int(s.StopTimeout()/time.Second))
	p.integer("ThrottleInterval", 5)
	p.str("StandardOutPath", logFile(s))
	p.str("StandardErrorPath", logFile(s))
	return p.bytes(), nil
}

// plist writes an XML property list holding one dict, key by key.
type plist struct{ b bytes.Buffer }

func newPlist(comment string) *plist {
	p := &plist{}
	p.b.WriteString(xml.Header)
	p.b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	p.b.WriteString("<!-- " + xmlText(strings.ReplaceAll(comment, "--", "-")) + " -->\n<plist version=\"1.0\">\n<dict>\n")
	return p
}

// value writes a key and its value, given as XML.
func (p *plist) value(k, v string) { fmt.Fprintf(&p.b, "\t<key>%s</key>\n\t%s\n", xmlText(k), v) }

func (p *plist) str(k, v string) { p.value(k, "<string>"+xmlText(v)+"</string>") }

func (p *plist) integer(k string, n int) { p.value(k, "<integer>"+strconv.Itoa(n)+"</integer>") }

func (p *plist) strs(k string, vs []string) {
	var b strings.Builder
	b.WriteString("<array>\n")
	for _, v := range vs {
		b.WriteString("\t\t<string>" + xmlText(v) + "</string>\n")
	}
	b.WriteString("\t</array>")
	p.value(k, b.String())
}

func (p *plist) bytes() []byte { return append(p.b.Bytes(), "</dict>\n</plist>\n"...) }

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// ReadPlist decodes an XML property list into Go values: dict →
// map[string]any, array → []any, string, integer → int64, real → float64,
// true/false → bool. It reads what render writes and what Apple's tools
// write in XML form.
func ReadPlist(data []byte) (any, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "plist" {
			v, _, err := plistValue(dec)
			return v, err
		}
	}
}

// plistValue reads the next value; end reports the parent's end tag.
func plistValue(dec *xml.Decoder) (v any, end bool, err error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, fmt.Errorf("plist: %w", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil, true, nil
		case xml.StartElement:
			return plistElement(dec, t)
		}
	}
}

func plistElement(dec *xml.Decoder, t xml.StartElement) (any, bool, error) {
	switch t.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, end, err := plistValue(dec)
			if err != nil || end {
				return m, false, err
			}
			ks, ok := k.(plistKey)
			if !ok {
				return nil, false, fmt.Errorf("plist: dict holds a %T where a <key> belongs", k)
			}
			v, end, err := plistValue(dec)
			if err != nil {
				return nil, false, err
			}
			if end {
				return nil, false, fmt.Errorf("plist: key %q has no value", ks)
			}
			m[string(ks)] = v
		}
	case "array":
		a := []any{}
		for {
			v, end, err := plistValue(dec)
			if err != nil || end {
				return a, false, err
			}
			a = append(a, v)
		}
	case "true", "false":
		if err := dec.Skip(); err != nil {
			return nil, false, err
		}
		return t.Name.Local == "true", false, nil
	}
	var text string
	if err := dec.DecodeElement(&text, &t); err != nil {
		return nil, false, fmt.Errorf("plist: <%s>: %w", t.Name.Local, err)
	}
	switch t.Name.Local {
	case "key":
		return plistKey(text), false, nil
	case "string":
		return text, false, nil
	case "integer":
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		return n, false, err
	case "real":
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		return f, false, err
	}
	return nil, false, fmt.Errorf("plist: unknown element <%s>", t.Name.Local)
}

// plistKey tells a dict's <key> from a <string> value.
type plistKey string

func (l *launchd) args(unit []byte) ([]string, error) {
	v, err := ReadPlist(unit)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	arr, _ := m["ProgramArguments"].([]any)
	if len(arr) == 0 {
		return nil, errors.New("no ProgramArguments")
	}
	out := make([]string, 0, len(arr))
	for _, a := range arr {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("ProgramArguments holds a %T", a)
		}
		out = append(out, s)
	}
	return out, nil
}

func (l *launchd) launchctl(ctx context.Context, args ...string) ([]byte, error) {
	return l.run.Output(ctx, "launchctl", args...)
}

// activate unloads a loaded copy (launchd keeps the old plist until
// then; an error means there was none) and bootstraps the file.
func (l *launchd) activate(ctx context.Context) error {
	l.launchctl(ctx, "bootout", l.target())
	if _, err := l.launchctl(ctx, "bootstrap", "gui/"+strconv.Itoa(l.uid), l.path()); err != nil {
		return err
	}
	_, err := l.launchctl(ctx, "enable", l.target())
	return err
}

func (l *launchd) uninstall(ctx context.Context) error {
	l.launchctl(ctx, "bootout", l.target()) // an error means it was not loaded
	if err := os.Remove(l.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (l *launchd) restart(ctx context.Context) error {
	_, err := l.launchctl(ctx, "kickstart", "-k", l.target())
	return err
}

// state reads `launchctl print`: "state = running" and "pid = N" lines.
// launchctl fails when the agent is not loaded.
func (l *launchd) state(ctx context.Context) (State, error) {
	out, err := l.launchctl(ctx, "print", l.target())
	if err != nil {
		return State{Active: "not loaded"}, nil
	}
	st := State{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		switch {
		case !ok:
		case k == "state" && st.Active == "":
			st.Active = v
		case k == "pid" && st.PID == 0:
			st.PID, _ = strconv.Atoi(v)
		}
	}
	st.Running = st.Active == "running" && st.PID > 0
	return st, nil
}

func (l *launchd) logs(ctx context.Context, s Spec, w io.Writer, lines int, follow bool) error {
	args := []string{"-n", strconv.Itoa(lines)}
	if follow {
		args = append(args, "-F")
	}
	return l.run.Stream(ctx, w, "tail", append(args, logFile(s))...)
}

// recent reads the log file's tail itself: no command needed.
func (l *launchd) recent(_ context.Context, s Spec, lines int) ([]string, error) {
	data, err := readTail(logFile(s), 256<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	all := nonEmptyLines(data)
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return all, nil
}

// readTail reads at most limit bytes from the end of a file.
func readTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-limit, 0)
	buf := make([]byte, fi.Size()-off)
	_, err = f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return buf, nil
}

// environ: launchd gives an agent a fixed minimal environment (PATH,
// HOME, USER, …) and no variable from the user's shell.
func (l *launchd) environ(context.Context) (map[string]string, error) {
	return map[string]string{}, nil
}

// monitorLabel is the launchd interval job's label.
const monitorLabel = "ai.opensoul.monitor"

func (l *launchd) monitorPath() string {
	return filepath.Join(l.home, "Library", "LaunchAgents", monitorLabel+".plist")
}

// monitorFiles is one plist: RunAtLoad runs it at login (launchd has no
// boot delay), StartInterval every 30 minutes; launchd runs a job missed
// while the Mac slept once it wakes.
func (l *launchd) monitorFiles(m MonitorSpec) ([]unitFile, error) {
	if err := checkSpec(Spec{Binary: m.Binary, StateDir: m.StateDir, Config: m.Config}); err != nil {
		return nil, err
	}
	p := newPlist("Written by `opensoul monitor install`.")
	p.str("Label", monitorLabel)
	p.strs("ProgramArguments", m.Argv())
	p.str("WorkingDirectory", m.StateDir)
	p.value("RunAtLoad", "<true/>")
	p.integer("StartInterval", int(monitorEvery/time.Second))
	log := filepath.Join(m.StateDir, "logs", "monitor.log")
	p.str("StandardOutPath", log)
	p.str("StandardErrorPath", log)
	return []unitFile{{l.monitorPath(), p.bytes()}}, nil
}

func (l *launchd) activateMonitor(ctx context.Context) error {
	target := "gui/" + strconv.Itoa(l.uid) + "/" + monitorLabel
	l.launchctl(ctx, "bootout", target) // an error means it was not loaded
	_, err := l.launchctl(ctx, "bootstrap", "gui/"+strconv.Itoa(l.uid), l.monitorPath())
	return err
}

func (l *launchd) uninstallMonitor(ctx context.Context) error {
	l.launchctl(ctx, "bootout", "gui/"+strconv.Itoa(l.uid)+"/"+monitorLabel)
	if err := os.Remove(l.monitorPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
