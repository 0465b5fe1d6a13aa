// Package monitor is `opensoul monitor`: every agent's credential
// problems (gateway.Health, the answer `models status --check` and doctor
// give), each with its fix, and alerts on a change: a new problem at
// once, a standing one again after an hour, one "resolved" when it is
// gone, remembered between runs in <state>/monitor-state.json under its
// lock. Notifiers (ntfy, webhook, exec, desktop, stdout) each deliver one
// alert; one failing never stops the others. It receives what it needs
// from the CLI through Host and never imports cli; the commands (flags,
// --help, exit codes, output formats, install) are cli/monitor_cmd.go.
package monitor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// alertEvery is how often one unchanged problem is alerted again.
const alertEvery = time.Hour

// Problem is one thing about credentials that needs the user: a
// gateway.Problem of one agent, with a fix. It holds ids and times, never
// a secret.
type Problem struct {
	Agent     string `json:"agent"`
	Kind      string `json:"kind"`     // gateway.Problem* kinds
	Severity  int    `json:"severity"` // gateway.NeedsPerson or NeedsSoon
	Subject   string `json:"subject"`  // a profile id or provider/model
	ExpiresAt int64  `json:"expiresAt,omitempty"`
	Message   string `json:"message"`
	Fix       string `json:"fix,omitempty"`
}

// key names a problem across runs: the same kind for the same subject is
// the same problem however its expiry time moves.
func (p Problem) key() string { return p.Kind + " " + p.Agent + " " + p.Subject }

// simpleWords are the simple form's first words per kind.
var simpleWords = map[string]string{
	gateway.ProblemExpired: "EXPIRED", gateway.ProblemMissing: "MISSING", gateway.ProblemInvalid: "INVALID",
	gateway.ProblemExpiring: "EXPIRING", gateway.ProblemCooling: "COOLING", gateway.ProblemDisabled: "DISABLED",
	gateway.ProblemNoCredential: "MISSING",
}

// Simple is the one-line form for widgets: EXPIRED <profile>,
// EXPIRING <profile> <time left>, MISSING <profile or provider/model>,
// INVALID <profile>, COOLING|DISABLED <provider/model>. A subject of an
// agent other than the default one is written <agent>/<subject>.
func (p Problem) Simple(defaultAgent string, now time.Time) string {
	what := p.Subject
	if p.Agent != defaultAgent {
		what = p.Agent + "/" + what
	}
	line := cmp.Or(simpleWords[p.Kind], strings.ToUpper(p.Kind)) + " " + what
	if p.Kind == gateway.ProblemExpiring {
		line += " " + gateway.Human(time.UnixMilli(p.ExpiresAt).Sub(now))
	}
	return line
}

// ExitCode is `models status --check`'s: 1 when something needs a
// person, else 2 when something needs attention soon, else 0.
func ExitCode(ps []Problem) int {
	h := gateway.Health{}
	for _, p := range ps {
		h.Problems = append(h.Problems, gateway.Problem{Severity: p.Severity})
	}
	return h.ExitCode()
}

// Host is what the monitor needs from the CLI, with the config loaded.
type Host struct {
	Store *store.Store
	// Agent resolves an agent id ("": the configured default).
	Agent func(flag string) (string, error)
	// Health is the gateway's answer for one agent's credentials at now
	// (gateway/health.go), with the agent id it resolved.
	Health func(ctx context.Context, agent string, now time.Time) (string, *gateway.Health, error)
	Warnf  func(format string, args ...any) // the CLI's "opensoul: warning: …"
}

// agentProblems is one agent's gateway.Health problems (the same answer
// `models status --check` and doctor give), each with a fix.
func (h *Host) agentProblems(ctx context.Context, agent string, now time.Time) ([]Problem, error) {
	ag, health, err := h.Health(ctx, agent, now)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, gp := range health.Problems {
		out = append(out, Problem{Agent: ag, Kind: gp.Kind, Severity: gp.Severity, Subject: gp.Subject,
			ExpiresAt: gp.ExpiresAt, Message: gp.String(), Fix: problemFix(gp)})
	}
	return out, nil
}

// problemFix is the command that fixes p.
func problemFix(p gateway.Problem) string {
	provider, _, _ := strings.Cut(p.Subject, ":")
	if prov, _, ok := strings.Cut(p.Subject, "/"); ok {
		provider = prov
	}
	switch p.Kind {
	case gateway.ProblemCooling:
		return "wait, or see: opensoul models status"
	case gateway.ProblemDisabled:
		return "opensoul models status (why), then a new secret: opensoul models auth paste-token --provider " + provider
	case gateway.ProblemNoCredential:
		return "opensoul models auth paste-token --provider " + provider
	}
	return "opensoul models auth paste-token --provider " + provider + " --profile-id " + p.Subject
}

// agents are the default agent and every agent with a store.
func (h *Host) agents() ([]string, error) {
	def, err := h.Agent("")
	if err != nil {
		return nil, err
	}
	agents := []string{def}
	entries, err := os.ReadDir(filepath.Join(h.Store.Dir, "agents"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if _, err := os.Stat(h.Store.ProfilesPath(e.Name())); e.IsDir() && err == nil && !slices.Contains(agents, e.Name()) {
			agents = append(agents, e.Name())
		}
	}
	return agents, nil
}

// Problems checks every agent, worst kinds first.
func (h *Host) Problems(ctx context.Context, now time.Time) ([]Problem, error) {
	agents, err := h.agents()
	if err != nil {
		return nil, err
	}
	// An agent sees the main agent's profiles too: a profile's problem is
	// reported once, for the first agent (the default one) that has it;
	// severity 1 (needs a person) before 2 (soon).
	var all []Problem
	seen := map[string]bool{}
	for _, ag := range agents {
		ps, err := h.agentProblems(ctx, ag, now)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", ag, err)
		}
		for _, p := range ps {
			k := p.Kind + " " + p.Subject
			if !strings.Contains(p.Subject, "/") && seen[k] {
				continue
			}
			seen[k] = true
			all = append(all, p)
		}
	}
	slices.SortStableFunc(all, func(x, y Problem) int { return cmp.Compare(x.Severity, y.Severity) })
	return all, nil
}

// alertRecord is what the monitor remembers about a problem between runs.
type alertRecord struct {
	Problem   Problem   `json:"problem"`
	FirstSeen time.Time `json:"firstSeen"`
	LastAlert time.Time `json:"lastAlert"` // zero: not alerted yet (every notifier failed)
}

// Alert is one message to send.
type Alert struct {
	Event   string  `json:"event"` // "problem" or "resolved"
	Problem Problem `json:"problem"`
}

// planAlerts decides, from what was known and what is wrong now, which
// alerts to send: a new problem at once, a standing one again after
// alertEvery, and one "resolved" for each problem gone. next is the state
// to keep if every alert gets through.
func planAlerts(prev map[string]alertRecord, current []Problem, now time.Time) (alerts []Alert, next map[string]alertRecord) {
	next = map[string]alertRecord{}
	for _, p := range current {
		k := p.key()
		r, seen := prev[k]
		if !seen {
			r.FirstSeen = now
		}
		r.Problem = p
		if r.LastAlert.IsZero() || now.Sub(r.LastAlert) >= alertEvery {
			alerts = append(alerts, Alert{Event: "problem", Problem: p})
			r.LastAlert = now
		}
		next[k] = r
	}
	for _, k := range slices.Sorted(maps.Keys(prev)) {
		if _, still := next[k]; !still {
			alerts = append(alerts, Alert{Event: "resolved", Problem: prev[k].Problem})
		}
	}
	return alerts, next
}

// StatePath is the file that remembers problems and alerts between runs.
func StatePath(stateDir string) string { return filepath.Join(stateDir, "monitor-state.json") }

// RunAlerts loads the state, sends what planAlerts says, and saves the
// state under its lock. An alert no notifier delivered is retried next
// run: a problem keeps its old LastAlert, a resolved one stays in the state.
func (h *Host) RunAlerts(ctx context.Context, ns []Notifier, current []Problem, now time.Time) error {
	path := StatePath(h.Store.Dir)
	if err := h.Store.EnsureDir(); err != nil {
		return err
	}
	return store.WithLock(path, func() error {
		prev := map[string]alertRecord{}
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(data, &prev); err != nil {
				h.Warnf("%s: %v; starting afresh", path, err)
				prev = map[string]alertRecord{}
			}
		}
		alerts, next := planAlerts(prev, current, now)
		for _, al := range alerts {
			if h.deliver(ctx, ns, al) {
				continue
			}
			k := al.Problem.key()
			if al.Event == "resolved" {
				next[k] = prev[k]
			} else {
				r := next[k]
				r.LastAlert = prev[k].LastAlert
				next[k] = r
			}
		}
		out, err := json.MarshalIndent(next, "", "  ")
		if err != nil {
			return err
		}
		return store.WriteFileAtomic(path, append(out, '\n'))
	})
}

// deliver sends one alert to every notifier; true if any got it. A
// failing notifier is reported and does not stop the others.
func (h *Host) deliver(ctx context.Context, ns []Notifier, al Alert) bool {
	ok := false
	for _, n := range ns {
		if err := n.Send(ctx, al); err != nil {
			h.Warnf("monitor: %s: %v", n.Name, err)
			continue
		}
		ok = true
	}
	return ok
}
