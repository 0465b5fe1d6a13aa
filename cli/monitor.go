package cli

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

// Problem kinds, worst first in the simple output.
const (
	kindExpired  = "expired"
	kindMissing  = "missing"
	kindInvalid  = "invalid"
	kindDisabled = "disabled"
	kindExpiring = "expiring"
)

// problem is one thing about credentials that needs the user. It holds
// ids and times, never a secret.
type problem struct {
	Kind      string `json:"kind"`
	Agent     string `json:"agent"`
	Provider  string `json:"provider"`
	Profile   string `json:"profile,omitempty"`   // "" for a provider-wide problem
	ExpiresAt int64  `json:"expiresAt,omitempty"` // ms, for expiring
	Message   string `json:"message"`
	Fix       string `json:"fix,omitempty"`
}

// key names a problem across runs: the same kind for the same profile
// is the same problem however its expiry time moves.
func (p problem) key() string {
	return p.Kind + " " + p.Agent + " " + cmp.Or(p.Profile, p.Provider)
}

// simple is the one-line form for widgets: EXPIRED <profile>,
// EXPIRING <profile> <time left>, MISSING <provider>, INVALID <profile>,
// DISABLED <provider>. A profile of an agent other than the default one
// is written <agent>/<profile>.
func (p problem) simple(defaultAgent string, now time.Time) string {
	what := cmp.Or(p.Profile, p.Provider)
	if p.Agent != defaultAgent {
		what = p.Agent + "/" + what
	}
	line := strings.ToUpper(p.Kind) + " " + what
	if p.Kind == kindExpiring {
		line += " " + gateway.Human(time.UnixMilli(p.ExpiresAt).Sub(now))
	}
	return line
}

// exitCode is `models status --check`'s: 1 when something is broken,
// 2 when something only expires soon, else 0.
func exitCode(ps []problem) int {
	code := 0
	for _, p := range ps {
		if p.Kind != kindExpiring {
			return 1
		}
		code = 2
	}
	return code
}

// agentProblems reads one agent's `models status` report and applies the
// rules of `models status --check` (evaluateCheck), plus "every profile of
// a provider in use is disabled". It stands in for gateway/health.go,
// which will hold these rules for --check, doctor and monitor alike.
func (a *app) agentProblems(ctx context.Context, agent string, now time.Time) ([]problem, error) {
	rep, err := a.buildStatus(ctx, agent, now)
	if err != nil {
		return nil, err
	}
	var out []problem
	add := func(kind, provider, profile, msg, fix string, expires int64) {
		out = append(out, problem{Kind: kind, Agent: rep.Agent, Provider: provider, Profile: profile, ExpiresAt: expires, Message: msg, Fix: fix})
	}
	for _, p := range rep.MissingProvidersInUse {
		add(kindMissing, p, "", p+": no credential, but a model in use needs it", "opensoul models auth paste-token --provider "+p, 0)
	}
	for _, ps := range rep.Providers {
		renew := "opensoul models auth paste-token --provider " + ps.Provider + " --profile-id "
		disabled := 0
		for _, r := range ps.Profiles {
			switch {
			case r.Status == gateway.StatusInvalid:
				add(kindInvalid, ps.Provider, r.ID, r.ID+": invalid: "+r.Reason, renew+r.ID, 0)
			case r.Type != store.TypeAPIKey && r.Status == gateway.StatusExpired:
				add(kindExpired, ps.Provider, r.ID, r.ID+": expired", renew+r.ID, 0)
			case r.Type != store.TypeAPIKey && r.Status == gateway.StatusMissing:
				add(kindExpired, ps.Provider, r.ID, r.ID+": no usable secret", renew+r.ID, 0)
			case r.Status == gateway.StatusExpiring && r.ExpiresAt != nil:
				add(kindExpiring, ps.Provider, r.ID, fmt.Sprintf("%s: expires in %s", r.ID, gateway.Human(time.UnixMilli(*r.ExpiresAt).Sub(now))), renew+r.ID, *r.ExpiresAt)
			}
			if r.DisabledUntil > now.UnixMilli() {
				disabled++
			}
		}
		if ps.InUse && len(ps.Profiles) > 0 && disabled == len(ps.Profiles) && ps.Effective.Source != "env" && ps.Effective.Source != "config" {
			add(kindDisabled, ps.Provider, "", ps.Provider+": every profile is disabled", "opensoul models status; opensoul models auth clear-cooldown --provider "+ps.Provider, 0)
		}
	}
	return out, nil
}

// monitorAgents are the default agent and every agent with a store.
func (a *app) monitorAgents() ([]string, error) {
	def, err := a.agentID("")
	if err != nil {
		return nil, err
	}
	agents := []string{def}
	entries, err := os.ReadDir(filepath.Join(a.st.Dir, "agents"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if _, err := os.Stat(a.st.ProfilesPath(e.Name())); e.IsDir() && err == nil && !slices.Contains(agents, e.Name()) {
			agents = append(agents, e.Name())
		}
	}
	return agents, nil
}

// allProblems checks every agent, worst kinds first.
func (a *app) allProblems(ctx context.Context, now time.Time) ([]problem, error) {
	if err := a.load(); err != nil {
		return nil, err
	}
	agents, err := a.monitorAgents()
	if err != nil {
		return nil, err
	}
	// An agent sees the main agent's profiles too: a profile's problem is
	// reported once, for the first agent (the default one) that has it.
	var all []problem
	seen := map[string]bool{}
	for _, ag := range agents {
		ps, err := a.agentProblems(ctx, ag, now)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", ag, err)
		}
		for _, p := range ps {
			k := p.Kind + " " + p.Profile
			if p.Profile != "" && seen[k] {
				continue
			}
			seen[k] = true
			all = append(all, p)
		}
	}
	order := []string{kindExpired, kindMissing, kindInvalid, kindDisabled, kindExpiring}
	slices.SortStableFunc(all, func(x, y problem) int {
		return cmp.Compare(slices.Index(order, x.Kind), slices.Index(order, y.Kind))
	})
	return all, nil
}

// alertRecord is what the monitor remembers about a problem between runs.
type alertRecord struct {
	Problem   problem   `json:"problem"`
	FirstSeen time.Time `json:"firstSeen"`
	LastAlert time.Time `json:"lastAlert"` // zero: not alerted yet (every notifier failed)
}

// alert is one message to send.
type alert struct {
	Event   string  `json:"event"` // "problem" or "resolved"
	Problem problem `json:"problem"`
}

// planAlerts decides, from what was known and what is wrong now, which
// alerts to send: a new problem at once, a standing one again after
// alertEvery, and one "resolved" for each problem gone. next is the state
// to keep if every alert gets through.
func planAlerts(prev map[string]alertRecord, current []problem, now time.Time) (alerts []alert, next map[string]alertRecord) {
	next = map[string]alertRecord{}
	for _, p := range current {
		k := p.key()
		r, seen := prev[k]
		if !seen {
			r.FirstSeen = now
		}
		r.Problem = p
		if r.LastAlert.IsZero() || now.Sub(r.LastAlert) >= alertEvery {
			alerts = append(alerts, alert{Event: "problem", Problem: p})
			r.LastAlert = now
		}
		next[k] = r
	}
	for _, k := range slices.Sorted(maps.Keys(prev)) {
		if _, still := next[k]; !still {
			alerts = append(alerts, alert{Event: "resolved", Problem: prev[k].Problem})
		}
	}
	return alerts, next
}

func monitorStatePath(stateDir string) string { return filepath.Join(stateDir, "monitor-state.json") }

// runAlerts loads the state, sends what planAlerts says, and saves the
// state under its lock. An alert no notifier delivered is retried next
// run: a problem keeps its old LastAlert, a resolved one stays in the state.
func (a *app) runAlerts(ctx context.Context, ns []notifier, current []problem, now time.Time) error {
	path := monitorStatePath(a.st.Dir)
	if err := a.st.EnsureDir(); err != nil {
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
				a.warnf("%s: %v; starting afresh", path, err)
				prev = map[string]alertRecord{}
			}
		}
		alerts, next := planAlerts(prev, current, now)
		for _, al := range alerts {
			if a.deliver(ctx, ns, al) {
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
func (a *app) deliver(ctx context.Context, ns []notifier, al alert) bool {
	ok := false
	for _, n := range ns {
		if err := n.send(ctx, al); err != nil {
			a.warnf("monitor: %s: %v", n.name, err)
			continue
		}
		ok = true
	}
	return ok
}
