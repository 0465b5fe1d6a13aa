package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

func (a *app) modelsCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "models",
		ShortUsage: "opensoul models <status|list|auth> [flags]",
		ShortHelp:  "Show models and manage the credentials that serve them.",
		LongHelp: `Examples:
  opensoul models status
  opensoul models status --check --json
  opensoul models list
  opensoul models auth paste-token --provider anthropic`,
		FlagSet:     a.flagSet("models"),
		Subcommands: []*ffcli.Command{a.modelsStatusCmd(), a.modelsListCmd(), a.authCmd()},
	})
}

// statusReport is the JSON of `models status`.
type statusReport struct {
	Agent                 string           `json:"agent"`
	StorePath             string           `json:"storePath"`
	ConfigPath            string           `json:"configPath"`
	DefaultModel          string           `json:"defaultModel"`
	Fallbacks             []string         `json:"fallbacks"`
	MissingProvidersInUse []string         `json:"missingProvidersInUse"`
	Providers             []providerStatus `json:"providers"`
	Check                 *checkResult     `json:"check,omitempty"`
}

type providerStatus struct {
	Provider  string          `json:"provider"`
	InUse     bool            `json:"inUse"`
	Effective effectiveSource `json:"effective"`
	Profiles  []profileStatus `json:"profiles"`
}

type effectiveSource struct {
	Source string `json:"source"` // profile | env | config | missing
	Detail string `json:"detail"`
}

type profileStatus struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Status         string `json:"status"`
	Kind           string `json:"kind,omitempty"`
	Reason         string `json:"reason,omitempty"`
	ExpiresAt      *int64 `json:"expiresAt"`
	RemainingMs    *int64 `json:"remainingMs"`
	CooldownUntil  int64  `json:"cooldownUntil"`
	DisabledUntil  int64  `json:"disabledUntil"`
	DisabledReason string `json:"disabledReason"`
	Label          string `json:"label"`
	Email          string `json:"email,omitempty"`
	LastUsed       int64  `json:"lastUsed"`
}

type checkResult struct {
	ExitCode int      `json:"exitCode"`
	Problems []string `json:"problems"`
}

func (a *app) modelsStatusCmd() *ffcli.Command {
	fs := a.flagSet("models status")
	asJSON := fs.Bool("json", false, "print JSON")
	check := fs.Bool("check", false, "exit 1 when a credential is expired, invalid or missing, 2 when one expires within 24h")
	agent := fs.String("agent", "", "agent id (default: agents.default, normally main)")
	return leaf(&ffcli.Command{
		Name:       "status",
		ShortUsage: "opensoul models status [--json] [--check] [--agent ID]",
		ShortHelp:  "Show where each provider's credential comes from and the state of every profile.",
		LongHelp: `For each provider: the effective credential source (a profile, an
environment variable and the file it came from, or config), then every
profile with its type, status (ok, static, expiring, expired, invalid,
missing), time to expiry, cooldown and a masked label.

--check exits 1 when a token/OAuth profile is expired, invalid or missing or
a provider in use has no credential; 2 when something expires within 24h.

Examples:
  opensoul models status
  opensoul models status --check || notify-send "OpenSoul credentials need attention"
  opensoul models status --json --agent cron`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("models status takes no arguments, got %q", args)
			}
			rep, err := a.buildStatus(ctx, *agent, time.Now())
			if err != nil {
				return err
			}
			if *check {
				rep.Check = rep.evaluateCheck()
			}
			if *asJSON {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				rep.writeText(a.stdout, time.Now())
			}
			if rep.Check != nil && rep.Check.ExitCode != 0 {
				return &exitError{code: rep.Check.ExitCode}
			}
			return nil
		},
	})
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// agentID resolves --agent or the configured default.
func (a *app) agentID(flagVal string) (string, error) {
	id := flagVal
	if id == "" {
		id = a.cfg.Agents.Default
	}
	if id == "" {
		id = store.DefaultAgent
	}
	return id, store.ValidAgentID(id)
}

// agentSnapshot loads config and the agent's credentials snapshot, the
// first step of every command that shows profiles.
func (a *app) agentSnapshot(agentFlag string) (string, *gateway.Snapshot, error) {
	if err := a.load(); err != nil {
		return "", nil, err
	}
	agent, err := a.agentID(agentFlag)
	if err != nil {
		return "", nil, err
	}
	snap, err := gateway.LoadSnapshot(a.st, agent)
	return agent, snap, err
}

// modelsInUse returns the default model and its fallbacks.
func (a *app) modelsInUse() []string {
	return append([]string{a.cfg.Agents.Defaults.Model.Primary}, a.cfg.Agents.Defaults.Model.Fallbacks...)
}

func (a *app) buildStatus(ctx context.Context, agentFlag string, now time.Time) (*statusReport, error) {
	agent, snap, err := a.agentSnapshot(agentFlag)
	if err != nil {
		return nil, err
	}
	rep := &statusReport{
		Agent:                 agent,
		StorePath:             a.st.ProfilesPath(agent),
		ConfigPath:            a.cfgFile,
		DefaultModel:          a.cfg.Agents.Defaults.Model.Primary,
		Fallbacks:             append([]string{}, a.cfg.Agents.Defaults.Model.Fallbacks...),
		MissingProvidersInUse: []string{},
	}
	inUse := map[string]bool{}
	for _, ref := range a.modelsInUse() {
		if p, _, ok := SplitModelRef(ref); ok {
			inUse[p] = true
		}
	}
	provs := map[string]bool{}
	for p := range inUse {
		provs[p] = true
	}
	for _, c := range snap.Profiles {
		provs[c.Provider] = true
	}
	for name, pc := range a.cfg.Providers {
		if pc.APIKey != "" {
			provs[name] = true
		}
		if _, _, ok := a.env.Credential(name); ok {
			provs[name] = true
		}
	}
	names := make([]string, 0, len(provs))
	for p := range provs {
		names = append(names, p)
	}
	sort.Strings(names)
	verdict := a.verdictFunc(ctx, now)
	if verdict != nil {
		var creds []store.Credential
		for _, c := range snap.Profiles {
			if st := gateway.ProfileStatus(c, now); st != gateway.StatusMissing && st != gateway.StatusExpired {
				creds = append(creds, c)
			}
		}
		a.prefetchVerdicts(ctx, creds, now)
	}
	for _, p := range names {
		ps := providerStatus{Provider: p, InUse: inUse[p], Profiles: []profileStatus{}}
		ids := snap.ProfileIDs(p)
		for _, id := range ids {
			ps.Profiles = append(ps.Profiles, profileRow(id, snap, now, verdict))
		}
		ps.Effective = a.effective(p, snap, ps.Profiles)
		if ps.Effective.Source == "missing" && ps.InUse {
			rep.MissingProvidersInUse = append(rep.MissingProvidersInUse, p)
		}
		rep.Providers = append(rep.Providers, ps)
	}
	return rep, nil
}

// verdictFunc returns a provider-module check for profiles, or nil when
// no module host is available. Set by the provider-module integration.
func (a *app) verdictFunc(ctx context.Context, now time.Time) func(id string, c store.Credential) (status, kind, reason string) {
	if a.checker == nil {
		return nil
	}
	return func(id string, c store.Credential) (string, string, string) {
		return a.checker(ctx, c, now)
	}
}

func profileRow(id string, snap *gateway.Snapshot, now time.Time, verdict func(string, store.Credential) (string, string, string)) profileStatus {
	c := snap.Profiles[id]
	st := snap.Stats[id]
	row := profileStatus{
		ID:             id,
		Type:           c.Type,
		Status:         gateway.ProfileStatus(c, now),
		CooldownUntil:  st.CooldownUntil,
		DisabledUntil:  st.DisabledUntil,
		DisabledReason: st.DisabledReason,
		Label:          gateway.Mask(c.Secret()),
		Email:          c.Email,
		LastUsed:       st.LastUsed,
	}
	if c.Label != "" {
		row.Label = c.Label + " " + row.Label
	}
	if c.Expires != 0 {
		e := c.Expires
		rem := c.Expires - now.UnixMilli()
		row.ExpiresAt, row.RemainingMs = &e, &rem
	}
	if verdict != nil && row.Status != gateway.StatusMissing && row.Status != gateway.StatusExpired {
		if status, kind, reason := verdict(id, c); status != "" {
			row.Kind = kind
			if status == gateway.StatusInvalid {
				row.Status, row.Reason = status, reason
			}
		}
	}
	return row
}

// effective says where the provider's credential comes from (DESIGN §3).
func (a *app) effective(provider string, snap *gateway.Snapshot, rows []profileStatus) effectiveSource {
	usable := map[string]bool{}
	first := ""
	best := 0
	for _, r := range rows {
		if r.Status == gateway.StatusExpired || r.Status == gateway.StatusMissing || r.Status == gateway.StatusInvalid {
			continue
		}
		usable[r.ID] = true
		// Mirror the built-in policy's round-robin: oauth, token, api_key.
		if rank := typeRank(r.Type); first == "" || rank > best {
			first, best = r.ID, rank
		}
	}
	if order := snap.Order[provider]; len(order) > 0 {
		// An explicit order is kept as given: its first usable profile.
		first = ""
		for _, id := range order {
			if usable[id] {
				first = id
				break
			}
		}
	}
	if first != "" {
		d := first
		if len(usable) > 1 {
			d += fmt.Sprintf(" (+%d more)", len(usable)-1)
		}
		return effectiveSource{Source: "profile", Detail: d}
	}
	if _, v, ok := a.env.Credential(provider); ok {
		return effectiveSource{Source: "env", Detail: fmt.Sprintf("env: %s (from %s)", v.Name, v.Source)}
	}
	if a.cfg.Providers[provider].APIKey != "" {
		return effectiveSource{Source: "config", Detail: fmt.Sprintf("config: providers.%s.apiKey (%s)", provider, a.cfgFile)}
	}
	var vars []string
	for _, c := range gateway.EnvVarsFor(provider) {
		vars = append(vars, c.Var)
	}
	return effectiveSource{Source: "missing", Detail: fmt.Sprintf("no credential (looked in %s, env %s, providers.%s.apiKey); run: opensoul models auth paste-token --provider %s",
		a.st.ProfilesPath(snap.Agent), strings.Join(vars, ", "), provider, provider)}
}

func (rep *statusReport) evaluateCheck() *checkResult {
	res := &checkResult{Problems: []string{}}
	raise := func(code int, msg string) {
		if code == 1 || res.ExitCode == 0 {
			res.ExitCode = max(res.ExitCode, code)
		}
		res.Problems = append(res.Problems, msg)
	}
	for _, p := range rep.MissingProvidersInUse {
		raise(1, fmt.Sprintf("%s: no credential, but a model in use needs it", p))
	}
	for _, ps := range rep.Providers {
		for _, r := range ps.Profiles {
			switch {
			case r.Status == gateway.StatusInvalid:
				raise(1, fmt.Sprintf("%s: invalid: %s", r.ID, r.Reason))
			case r.Type != store.TypeAPIKey && (r.Status == gateway.StatusExpired || r.Status == gateway.StatusMissing):
				raise(1, fmt.Sprintf("%s: %s", r.ID, r.Status))
			case r.Status == gateway.StatusExpiring:
				raise(2, fmt.Sprintf("%s: expires in %s", r.ID, gateway.Human(time.Duration(*r.RemainingMs)*time.Millisecond)))
			}
		}
	}
	return res
}

func (rep *statusReport) writeText(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "Agent:         %s\n", rep.Agent)
	fmt.Fprintf(w, "Auth store:    %s\n", rep.StorePath)
	fmt.Fprintf(w, "Default model: %s", rep.DefaultModel)
	if len(rep.Fallbacks) > 0 {
		fmt.Fprintf(w, " (fallbacks: %s)", strings.Join(rep.Fallbacks, ", "))
	}
	fmt.Fprintln(w)
	if len(rep.Providers) == 0 {
		fmt.Fprintln(w, "\nNo credentials found. Add one with:\n  opensoul models auth paste-token --provider anthropic")
	}
	for _, ps := range rep.Providers {
		fmt.Fprintf(w, "\n%s — %s\n", ps.Provider, ps.Effective.Detail)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range ps.Profiles {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.ID, r.Type, r.Status, profileNote(r, now), r.Label)
		}
		tw.Flush()
	}
	if len(rep.MissingProvidersInUse) > 0 {
		fmt.Fprintf(w, "\nMissing credentials for providers in use: %s\n", strings.Join(rep.MissingProvidersInUse, ", "))
		for _, p := range rep.MissingProvidersInUse {
			fmt.Fprintf(w, "  fix: opensoul models auth paste-token --provider %s\n", p)
		}
	}
	if rep.Check != nil && len(rep.Check.Problems) > 0 {
		fmt.Fprintln(w, "\nCheck:")
		for _, p := range rep.Check.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func profileNote(r profileStatus, now time.Time) string {
	var notes []string
	nowMs := now.UnixMilli()
	if r.RemainingMs != nil {
		if *r.RemainingMs > 0 {
			notes = append(notes, "expires in "+gateway.Human(time.Duration(*r.RemainingMs)*time.Millisecond))
		} else {
			notes = append(notes, "expired "+gateway.Human(time.Duration(-*r.RemainingMs)*time.Millisecond)+" ago")
		}
	}
	switch {
	case r.DisabledUntil >= gateway.DisabledUntilChanged:
		notes = append(notes, fmt.Sprintf("disabled: %s (until the credential is replaced or the cooldown cleared)", r.DisabledReason))
	case r.DisabledUntil > nowMs:
		notes = append(notes, fmt.Sprintf("disabled: %s (%s left)", r.DisabledReason, gateway.Human(time.Duration(r.DisabledUntil-nowMs)*time.Millisecond)))
	}
	if r.CooldownUntil > nowMs {
		notes = append(notes, "cooldown "+gateway.Human(time.Duration(r.CooldownUntil-nowMs)*time.Millisecond))
	}
	if r.Reason != "" {
		notes = append(notes, r.Reason)
	}
	if len(notes) == 0 {
		return "-"
	}
	return strings.Join(notes, ", ")
}

func typeRank(t string) int {
	switch t {
	case store.TypeOAuth:
		return 3
	case store.TypeToken:
		return 2
	}
	return 1
}
