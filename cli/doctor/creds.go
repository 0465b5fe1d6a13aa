package doctor

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// Status is what doctor judges of `models status` (cli's statusReport):
// the resolver's decisions for the agent, the same the gateway makes.
type Status struct {
	StorePath string
	Providers []Provider
	// Models are the decisions for the models in use, every model with
	// a recorded cooldown, and each other provider with a profile.
	Models []gateway.ModelResolution
}

// Provider is one provider's row: the credential tried first for its
// model and every profile's role.
type Provider struct {
	Provider  string
	InUse     bool
	Model     string // the provider/model ref the roles are for
	Effective Effective
	Profiles  []Profile
}

// Effective is where the provider's credential comes from.
type Effective struct {
	Source  string // profile | env | config | missing
	Serving string // the credential tried first, "" when none
	Detail  string
}

// Profile is one profile as models status shows it.
type Profile struct {
	ID             string
	Status         string
	Reason         string
	Role           string // serves | candidate | cooling | unused
	Why            string // the policy's reason for Role
	Scope          string // the only client the provider accepts it from; "" any
	DisabledUntil  int64
	DisabledReason string
	Note           string // models status's note (expiry, disable, cooldown, reason)
}

// credentialChecks are doctor's findings about credentials, all read from
// the resolver's decisions in rep (the same the gateway makes): which
// credential serves each provider, what cools or is disabled for which
// model, profiles the order in force leaves out, user pins to profiles
// that cannot serve, and environment keys that are never reached.
func (s *Setup) credentialChecks(rep *Status, agent string, now time.Time) []Check {
	var out []Check
	add := func(name, status, detail, fix string) {
		out = append(out, Check{name, status, detail, fix})
	}
	for _, ps := range rep.Providers {
		s.providerChecks(ps, add)
	}
	reported := map[string]bool{}
	for _, m := range rep.Models {
		for _, pr := range m.Profiles {
			key := pr.ID + " " + pr.CooldownModel + pr.DisabledReason
			if pr.Role != gateway.RoleCooling || reported[key] {
				continue
			}
			reported[key] = true
			clear := "opensoul models auth clear-cooldown " + pr.ID + agentSuffix(agent)
			if pr.DisabledReason != "" {
				add("disabled "+pr.ID, "warn", fmt.Sprintf("disabled for every model: %s (%s)", pr.DisabledReason, s.Until(pr.Until, now)),
					"fix the account ("+pr.DisabledReason+"), then: "+clear)
				continue
			}
			add("cooldown "+pr.ID, "warn", fmt.Sprintf("cooling for %s (%s); %s", cmp.Or(pr.CooldownModel, "every model"), s.Until(pr.Until, now), servedText(m.Serving)), clear)
		}
	}
	for _, m := range rep.Models {
		for _, f := range m.Fallbacks {
			if reported[f.ID] || (f.Status != gateway.StatusInvalid && f.Status != gateway.StatusExpired) {
				continue
			}
			reported[f.ID] = true
			fix := "replace it (a cut-off paste?) or remove it"
			if name, ok := strings.CutPrefix(f.ID, "env:"); ok && f.EnvSource != "" {
				fix = "fix or unset " + name + " in " + f.EnvSource
			}
			add(f.ID, "fail", strings.TrimSpace(f.Status+": "+f.Reason)+" (the provider module rejects it: never used)", fix)
		}
	}
	out = append(out, s.pinChecks(rep, agent)...)
	out = append(out, s.envChecks(rep)...)
	return out
}

func (s *Setup) providerChecks(ps Provider, add func(name, status, detail, fix string)) {
	status, fix := "ok", ""
	if ps.Effective.Source == "missing" {
		status = "warn"
		if ps.InUse {
			status = "fail"
		}
		fix = "opensoul models auth paste-token --provider " + ps.Provider
	}
	detail, _, _ := strings.Cut(ps.Effective.Detail, "; run:")
	if ps.Effective.Serving != "" {
		detail = fmt.Sprintf("%s serves %s", ps.Effective.Serving, ps.Model)
		if ps.Effective.Source != "profile" {
			detail += " (" + ps.Effective.Detail + ")"
		}
	}
	add("credentials "+ps.Provider, status, detail, fix)
	for _, r := range ps.Profiles {
		switch r.Status {
		case gateway.StatusExpired, gateway.StatusInvalid, gateway.StatusMissing:
			add("profile "+r.ID, "fail", strings.TrimSpace(r.Status+" "+r.Reason), "opensoul models auth paste-token --provider "+ps.Provider+" --profile-id "+r.ID)
		case gateway.StatusExpiring:
			add("profile "+r.ID, "warn", r.Note, "renew the token (claude setup-token), then paste it again")
		}
		if r.Scope != "" {
			add("scope "+r.ID, "ok", fmt.Sprintf("serves %s requests only (the provider accepts it from %s only); other clients use the next credential", r.Scope, r.Scope),
				"")
		}
		if r.Role == gateway.RoleUnused && strings.HasPrefix(r.Why, "not used: not in ") {
			add("profile "+r.ID, "warn", "never serves: "+strings.TrimPrefix(r.Why, "not used: "),
				"opensoul models auth order get --provider "+ps.Provider+", then add it with order set (or doctor --fix)")
		}
	}
}

// pinChecks: sessions pinned by the user (/model …@profile) to a profile
// that is gone or cannot serve; such a pin is strict, so requests fail.
func (s *Setup) pinChecks(rep *Status, agent string) []Check {
	sessions, err := s.Store.LoadSessions(agent)
	if err != nil {
		return []Check{{"sessions", "fail", err.Error(), ""}}
	}
	var out []Check
	for _, id := range slices.Sorted(maps.Keys(sessions.Sessions)) {
		s := sessions.Sessions[id]
		if s.AuthProfileOverrideSource != store.PinUser || s.AuthProfileOverride == "" {
			continue
		}
		pin := s.AuthProfileOverride
		why := pinProblem(rep, pin)
		if why == "" {
			continue
		}
		out = append(out, Check{"pin " + id, "fail",
			fmt.Sprintf("session %s is pinned by /model …@%s, which %s; the pin is strict, so its requests fail", id, pin, why),
			"send /model default in that session, or: opensoul sessions reset " + id + agentSuffix(agent) + " (or doctor --fix)"})
	}
	return out
}

func pinProblem(rep *Status, pin string) string {
	for _, ps := range rep.Providers {
		for _, r := range ps.Profiles {
			if r.ID != pin {
				continue
			}
			switch {
			case r.Status == gateway.StatusExpired || r.Status == gateway.StatusInvalid || r.Status == gateway.StatusMissing:
				return "is " + r.Status
			case r.DisabledUntil > time.Now().UnixMilli():
				return "is disabled (" + r.DisabledReason + ")"
			}
			return ""
		}
	}
	return "no longer exists"
}

// envChecks: an environment key for a provider no model uses, or one
// never reached because profiles serve every model of its provider.
func (s *Setup) envChecks(rep *Status) []Check {
	var out []Check
	for _, ps := range rep.Providers {
		_, ev, ok := s.Env.Credential(ps.Provider)
		if !ok {
			continue
		}
		name := "env " + ev.Name
		if !ps.InUse && s.AllowsProvider != nil && !s.AllowsProvider(ps.Provider) {
			out = append(out, Check{name, "warn", fmt.Sprintf("set (from %s) but no configured model uses provider %s", ev.Source, ps.Provider), "remove it, or add a " + ps.Provider + " model to agents.defaults.models"})
			continue
		}
		if ps.Effective.Source == "profile" {
			out = append(out, Check{name, "ok", fmt.Sprintf("set (from %s); not reached while a profile can serve %s (it is the fallback)", ev.Source, ps.Provider), ""})
		}
	}
	return out
}

func servedText(serving string) string {
	if serving == "" {
		return "nothing else can serve it"
	}
	return serving + " serves it meanwhile"
}

func agentSuffix(agent string) string {
	if agent == store.DefaultAgent {
		return ""
	}
	return " --agent " + agent
}
