package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/login"
	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
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

// statusReport is the JSON of `models status`. Providers and Models come
// from the same policy decision the gateway makes (gateway.Resolver).
type statusReport struct {
	Agent                 string           `json:"agent"`
	StorePath             string           `json:"storePath"`
	ConfigPath            string           `json:"configPath"`
	DefaultModel          string           `json:"defaultModel"`
	Fallbacks             []string         `json:"fallbacks"`
	MissingProvidersInUse []string         `json:"missingProvidersInUse"`
	Providers             []providerStatus `json:"providers"`
	// Models holds the decision for the models in use, every model with a
	// recorded cooldown, and each other provider with a profile.
	Models   []gateway.ModelResolution `json:"models"`
	Problems []gateway.Problem         `json:"problems"`
	Check    *checkResult              `json:"check,omitempty"`
	// Probes: --probe's results (cli/login/probe.go).
	Probes []gateway.ProbeResult `json:"probes,omitempty"`

	health *gateway.Health
}

type providerStatus struct {
	Provider string `json:"provider"`
	InUse    bool   `json:"inUse"`
	// Model is the provider/model ref the profile roles are for.
	Model     string          `json:"model"`
	Effective effectiveSource `json:"effective"`
	Profiles  []profileStatus `json:"profiles"`
}

type effectiveSource struct {
	Source  string `json:"source"`  // profile | env | config | missing
	Serving string `json:"serving"` // the credential tried first, "" when none
	Detail  string `json:"detail"`
}

type profileStatus struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	// Role is serves | candidate | cooling | unused for the provider's
	// model, and Why the policy's reason.
	Role           string `json:"role"`
	Why            string `json:"why"`
	Kind           string `json:"kind,omitempty"`
	Reason         string `json:"reason,omitempty"`
	ExpiresAt      *int64 `json:"expiresAt"`
	RemainingMs    *int64 `json:"remainingMs"`
	CooldownUntil  int64  `json:"cooldownUntil"`
	CooldownModel  string `json:"cooldownModel,omitempty"`
	DisabledUntil  int64  `json:"disabledUntil"`
	DisabledReason string `json:"disabledReason"`
	// Scope names the only client the provider accepts the credential
	// from ("claude-code"); "" for any client.
	Scope    string `json:"scope,omitempty"`
	Label    string `json:"label"`
	Email    string `json:"email,omitempty"`
	LastUsed int64  `json:"lastUsed"`
	// Refreshable: an OAuth login the gateway refreshes before use.
	Refreshable bool `json:"refreshable,omitempty"`
	// Headroom is the tightest rate-limit window the provider last
	// reported for the profile (the usage store's latest limits), with
	// its reset; null when none was reported.
	Headroom *usage.ProfileHeadroom `json:"headroom"`
	// Usage is what the profile spent over 1h, 5h, 24h and 30d, as the
	// policy sees it (input.profiles[i].usage, quantized); null when
	// usage is off.
	Usage *policy.UsageFacts `json:"usage"`
}

type checkResult struct {
	ExitCode int      `json:"exitCode"`
	Problems []string `json:"problems"`
}

func (a *app) modelsStatusCmd() *ffcli.Command {
	fs := a.flagSet("models status")
	asJSON := fs.Bool("json", false, "print JSON")
	check := fs.Bool("check", false, "exit 1 when a credential needs a person, 2 when one expires within 24h or all are cooling (see below)")
	agent := fs.String("agent", "", "agent id (default: agents.default, normally main)")
	probe := fs.Bool("probe", false, "send one real, smallest request per profile (may cost a token) and show ok and latency, or the provider's error")
	probeProvider := fs.String("provider", "", "with --probe: only this provider's profiles")
	probeTimeout := fs.Duration("probe-timeout", 20*time.Second, "with --probe: how long each probe may take")
	return leaf(&ffcli.Command{
		Name:       "status",
		ShortUsage: "opensoul models status [--json] [--check] [--agent ID] [--probe [--provider P] [--probe-timeout D]]",
		ShortHelp:  "Show where each provider's credential comes from and the state of every profile.",
		LongHelp: `For each provider: the credential the gateway would use first, as its
policy decides now (your Rego, the agent store's order or config
auth.order, cooldowns, disables, pins), then every profile with its type,
status (ok, static, expiring, expired, invalid, missing), role (serves,
candidate, cooling, unused), time to expiry, cooldown (and its model),
headroom (the tightest rate-limit window the provider last reported, as
the gateway recorded it in <state>/usage.db, e.g. "30% tokens, resets in
12m"; "-" when none was reported), a masked label and the policy's reason.
--json also gives each profile's usage as the policy sees it (requests,
tokens and cost over 1h, 5h, 24h and 30d; null when usage is off).
Models with a recorded cooldown are shown too, each with the credential
that would serve it.

--check sets the exit code (also in --json as check.exitCode):
  1  always wins: a credential is expired, invalid or missing, or a model
     in use has no credential that can serve for a reason needing a person
     (every candidate disabled, expired or absent)
  2  something expires within 24h, or every candidate is cooling down
  0  otherwise

--probe sends each stored profile the smallest real request of its
provider's API (one output token, so it may cost a token), to the model in
use, presented exactly as the gateway presents it (module headers, a
login's own upstream, refreshed first if due). It shows ok and the
latency, or the provider's error (status, type, message; secrets masked).
With --check, a failed probe exits 1. It changes no cooldown. A
subscription token its provider restricts to its own CLI (a Claude
setup-token may be) can fail here and still work in that CLI: the
provider's message says so.

Examples:
  opensoul models status
  opensoul models status --probe --provider openai
  opensoul models status --check || notify-send "OpenSoul credentials need attention"
  opensoul models status --json --agent cron`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("models status takes no arguments, got %q", args)
			}
			rep, err := a.buildStatus(ctx, *agent, a.now())
			if err != nil {
				return err
			}
			if *probe {
				if err := a.runProbes(ctx, rep, *probeProvider, *probeTimeout); err != nil {
					return err
				}
			} else if *probeProvider != "" {
				return usageErr("--provider goes with --probe")
			}
			if *check {
				rep.Check = rep.evaluateCheck()
				if failed := login.ProbesFailed(rep.Probes); len(failed) > 0 {
					rep.Check.ExitCode, rep.Check.Problems = 1, append(rep.Check.Problems, failed...)
				}
			}
			if *asJSON {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				rep.writeText(a.stdout, a.now())
				login.WriteProbes(a.stdout, rep.Probes)
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

// resolver is the gateway's Resolver built from the loaded config: the
// same policies, environment, config order and keys the gateway uses.
func (a *app) resolver(ctx context.Context, now time.Time) (gateway.Resolver, error) {
	engine, err := policy.New(ctx, policy.Options{Dirs: a.policyDirs(), CacheSize: -1, Timeout: ms(a.cfg.Policy.TimeoutMs)})
	if err != nil {
		return gateway.Resolver{}, err
	}
	r := gateway.Resolver{
		Selector:  engine,
		Env:       a.env,
		Order:     a.cfg.Auth.Order,
		ConfigKey: func(p string) bool { return a.cfg.Providers[p].APIKey != "" },
		APIKey:    func(p string) string { return a.cfg.Providers[p].APIKey },
		Attrs:     a.cfg.Agents.AgentAttrs(),
	}
	if engine.ReadsUsage() { // as the gateway: only a user policy may read them
		r.Usage = a.usageFacts()
	}
	r.Verdict = a.verdictFunc(ctx, now)
	return r, nil
}

// health resolves, for an agent, the models in use, every model with a
// recorded cooldown and every other provider with a profile or a key.
func (a *app) health(ctx context.Context, snap *gateway.Snapshot, now time.Time) (*gateway.Health, error) {
	r, err := a.resolver(ctx, now)
	if err != nil {
		return nil, err
	}
	if r.Verdict != nil {
		var creds []store.Credential
		for _, c := range snap.Profiles {
			if st := gateway.ProfileStatus(c, now); st != gateway.StatusMissing && st != gateway.StatusExpired {
				creds = append(creds, c)
			}
		}
		a.prefetchVerdicts(ctx, creds, now)
	}
	inUse := a.modelsInUse()
	refs := gateway.Models(snap, inUse, now)
	for _, p := range a.keyedProviders() {
		if !slices.ContainsFunc(refs, func(r string) bool { return strings.HasPrefix(r, p+"/") }) {
			refs = append(refs, p+"/")
		}
	}
	return r.Health(ctx, snap, refs, inUse, now)
}

// keyedProviders are the providers with an environment or config key.
func (a *app) keyedProviders() []string {
	var out []string
	for name, pc := range a.cfg.Providers {
		if _, _, ok := a.env.Credential(name); ok || pc.APIKey != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (a *app) buildStatus(ctx context.Context, agentFlag string, now time.Time) (*statusReport, error) {
	agent, snap, err := a.agentSnapshot(agentFlag)
	if err != nil {
		return nil, err
	}
	h, err := a.health(ctx, snap, now)
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
		Providers:             []providerStatus{},
		Models:                h.Models,
		Problems:              h.Problems,
		health:                h,
	}
	var provs []string
	for _, m := range h.Models {
		if !slices.Contains(provs, m.Provider) {
			provs = append(provs, m.Provider)
		}
	}
	sort.Strings(provs)
	tight := usage.Tightest(usage.Owned(a.latestLimits(ctx), func(id string) string { return snap.Owner[id] }))
	spent := a.usageFacts()
	for _, p := range provs {
		mr := h.Provider(p)
		ps := providerStatus{Provider: p, InUse: a.providerInUse(p), Model: mr.Ref, Profiles: []profileStatus{}}
		for _, pr := range mr.Profiles {
			row := profileRow(pr, snap, now, a.verdictFunc(ctx, now))
			row.Headroom = tight[pr.ID]
			row.Usage = spent.Profile(snap.Owner[pr.ID], pr.ID)
			ps.Profiles = append(ps.Profiles, row)
		}
		ps.Effective = a.effective(mr, snap)
		if ps.Effective.Source == "missing" && ps.InUse {
			rep.MissingProvidersInUse = append(rep.MissingProvidersInUse, p)
		}
		rep.Providers = append(rep.Providers, ps)
	}
	return rep, nil
}

// latestLimits reads the latest limits from the usage store the gateway
// keeps (<state>/usage.db); none when usage is off, nothing was recorded
// yet or the store cannot be read (status still shows everything else).
func (a *app) latestLimits(ctx context.Context) []usage.Limits {
	path := usagePath(a.st.Dir)
	if !a.cfg.Usage.Enabled {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	st, err := usage.Open(path, a.usageOptions())
	if err != nil {
		fmt.Fprintf(a.stderr, "opensoul: headroom not shown: %v\n", err)
		return nil
	}
	defer st.Close()
	limits, err := st.LatestLimits(ctx)
	if err != nil {
		fmt.Fprintf(a.stderr, "opensoul: headroom not shown: %v\n", err)
		return nil
	}
	return limits
}

func (a *app) providerInUse(p string) bool {
	for _, ref := range a.modelsInUse() {
		if q, _, ok := SplitModelRef(ref); ok && q == p {
			return true
		}
	}
	return false
}

// verdictFunc returns a provider-module check for profiles, or nil when
// no module host is available. Set by the provider-module integration.
func (a *app) verdictFunc(ctx context.Context, now time.Time) func(id string, c store.Credential) gateway.Verdict {
	if a.checker == nil {
		return nil
	}
	return func(id string, c store.Credential) gateway.Verdict {
		return a.checker(ctx, c, now)
	}
}

// profileRow is one profile's line: its state from the store and its role
// in the policy's decision for the provider's model.
func profileRow(pr gateway.ProfileReason, snap *gateway.Snapshot, now time.Time, verdict func(string, store.Credential) gateway.Verdict) profileStatus {
	id := pr.ID
	c := snap.Profiles[id]
	st := snap.Stats.Get(id)
	row := profileStatus{
		ID:             id,
		Type:           c.Type,
		Status:         pr.Status,
		Role:           pr.Role,
		Why:            pr.Reason,
		Kind:           pr.Kind,
		CooldownUntil:  st.CooldownUntil,
		CooldownModel:  st.CooldownModel,
		DisabledUntil:  st.DisabledUntil,
		DisabledReason: st.DisabledReason,
		Scope:          st.Scope,
		Label:          scrub.Mask(c.Secret()),
		Email:          c.Email,
		LastUsed:       st.LastUsed,
	}
	if c.Label != "" {
		row.Label = c.Label + " " + row.Label
	}
	row.Refreshable = c.Refreshable()
	if c.RefreshError != "" {
		row.Reason = c.RefreshError // the provider's answer and the fix
	}
	if c.Expires != 0 {
		e := c.Expires
		rem := c.Expires - now.UnixMilli()
		row.ExpiresAt, row.RemainingMs = &e, &rem
	}
	if verdict != nil && row.Status == gateway.StatusInvalid {
		if v := verdict(id, c); v.Reason != "" {
			row.Reason = v.Reason
		}
	}
	return row
}

// effective says which credential would serve the provider's model, as
// the gateway's policy decides it (DESIGN §3).
func (a *app) effective(mr *gateway.ModelResolution, snap *gateway.Snapshot) effectiveSource {
	provider := mr.Provider
	switch mr.Source {
	case gateway.SourceProfile:
		d := mr.Serving
		if n := len(mr.Candidates) - 1; n > 0 {
			d += fmt.Sprintf(" (+%d more)", n)
		}
		return effectiveSource{Source: "profile", Serving: mr.Serving, Detail: d}
	case gateway.SourceEnv:
		name := strings.TrimPrefix(mr.Serving, "env:")
		return effectiveSource{Source: "env", Serving: mr.Serving, Detail: fmt.Sprintf("env: %s (from %s)", name, mr.EnvSource)}
	case gateway.SourceConfig:
		return effectiveSource{Source: "config", Serving: mr.Serving, Detail: fmt.Sprintf("config: providers.%s.apiKey (%s)", provider, a.cfgFile)}
	}
	if len(mr.Profiles) > 0 {
		return effectiveSource{Source: "missing", Detail: fmt.Sprintf("no credential can serve %s now (see each profile below); add one: opensoul models auth paste-token --provider %s", mr.Ref, provider)}
	}
	var vars []string
	for _, c := range gateway.EnvVarsFor(provider) {
		vars = append(vars, c.Var)
	}
	return effectiveSource{Source: "missing", Detail: fmt.Sprintf("no credential (looked in %s, env %s, providers.%s.apiKey); run: opensoul models auth paste-token --provider %s",
		a.st.ProfilesPath(snap.Agent), strings.Join(vars, ", "), provider, provider)}
}

// evaluateCheck is `--check`: the resolver's problems and exit code.
func (rep *statusReport) evaluateCheck() *checkResult {
	res := &checkResult{ExitCode: rep.health.ExitCode(), Problems: []string{}}
	for _, p := range rep.Problems {
		res.Problems = append(res.Problems, p.String())
	}
	return res
}
