package gateway

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// This file is the one answer to "which credential would serve, and what
// needs attention": the failover loop, `models status`, `doctor`,
// `order get`, `/model status`, `policy explain` and the service monitor
// all take it from Resolver, so none of them can disagree with the
// gateway about the policy's decision.

// Resolver decides, for one would-be request, which credential would serve
// it: the policy over the store snapshot, then the environment and config
// keys when no profile can serve (DESIGN §3).
type Resolver struct {
	Selector Selector
	Env      Env
	// Order is auth.order from the config (provider → profile ids).
	Order map[string][]string
	// ConfigKey reports whether providers.<p>.apiKey is set. Nil: never.
	ConfigKey func(provider string) bool
	// APIKey returns providers.<p>.apiKey, so that the provider module can
	// check it like a stored credential. Nil: only ConfigKey is known and
	// the key is not checked.
	APIKey func(provider string) string
	// Verdict refines a profile's status and kind with a provider module's
	// check. Nil: status from shape and expiry alone.
	Verdict func(id string, c store.Credential) Verdict
	// Attrs are the agents' attributes (config agents.<id>.attrs), given
	// to the policy as input.agent.attrs.
	Attrs map[string]map[string]string
	// Limits are the profiles' quotas as their providers last reported
	// them (input.profiles[i].limits). Nil: none known.
	Limits *Limits
	// Usage is what the profiles and agents spent (input.profiles[i].usage,
	// input.agent.usage). Nil: no usage kept; the facts are null.
	Usage *usage.Facts
}

// Query is one would-be request.
type Query struct {
	Agent, Session string
	SessionNew     bool
	Pin            *policy.Pin
	Provider       string
	Model          string
	API            string
	Stream         bool
	Client         policy.ClientFacts
	// Visit is what is known of the session: its client, start and
	// request count (see FactsRequest.Visit).
	Visit SessionVisit
	// Into, when set, is where the input is built instead of a new one
	// (the failover loop holds one with the request).
	Into *policy.Input
}

// Credential sources of a Resolution.
const (
	SourceProfile = "profile"
	SourceEnv     = "env"
	SourceConfig  = "config"
	SourceNone    = "none"
)

// Profile roles in a Resolution, in display order.
const (
	RoleServes    = "serves"    // the first credential the gateway would try
	RoleCandidate = "candidate" // tried after the one that serves
	RoleCooling   = "cooling"   // cooling down or disabled; back later
	RoleUnused    = "unused"    // excluded: expired, invalid, denied, out of order scope, another pin
)

// Resolution is the decision for one request and why each profile of the
// provider would or would not serve.
type Resolution struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Serving is the credential tried first: a profile id,
	// "env:VARIABLE" or "config:providers.P.apiKey"; "" when none can.
	Serving string `json:"serving"`
	Source  string `json:"source"` // profile | env | config | none
	// EnvSource says where an env credential was read from.
	EnvSource string `json:"envSource,omitempty"`
	// Strict: the policy or a user pin forbids failing over.
	Strict bool `json:"strict"`
	// Candidates are the profiles in the order they are tried.
	Candidates []string        `json:"candidates"`
	Profiles   []ProfileReason `json:"profiles"`
	// Fallbacks are the provider's environment and config credentials,
	// in the order they would be tried when no profile can serve, each
	// with the provider module's verdict: an invalid one is skipped.
	Fallbacks []FallbackCheck `json:"fallbacks,omitempty"`
	// Input and Decision are the policy's facts and answer.
	Input    *policy.Input   `json:"-"`
	Decision policy.Decision `json:"-"`
}

// ProfileReason says why one profile would or would not serve a model.
type ProfileReason struct {
	ID     string `json:"id"`
	Role   string `json:"role"`   // serves | candidate | cooling | unused
	Reason string `json:"reason"` // the policy's reason
	Type   string `json:"type"`
	Status string `json:"status"` // ok | static | expiring | expired | missing | invalid
	Kind   string `json:"kind,omitempty"`
	// Until is when a cooling profile is back (epoch ms; 0 otherwise).
	Until          int64  `json:"until,omitempty"`
	CooldownModel  string `json:"cooldownModel,omitempty"`
	DisabledReason string `json:"disabledReason,omitempty"`
	// Scope names the only client the provider accepts the credential
	// from; requests of other clients skip it.
	Scope string `json:"scope,omitempty"`
}

// FallbackCheck is an environment or config credential and its status.
type FallbackCheck struct {
	ID     string `json:"id"`     // env:VARIABLE or config:providers.P.apiKey
	Source string `json:"source"` // env | config
	// EnvSource says where an env credential was read from.
	EnvSource string `json:"envSource,omitempty"`
	Status    string `json:"status"` // static | ok | expiring | invalid …, as for profiles
	Reason    string `json:"reason,omitempty"`
}

// Fallback is the credential used when no profile can serve (DESIGN §3):
// the provider's environment variables in priority order, then
// providers.<p>.apiKey, skipping any the provider module rejects (checked
// like stored profiles, so one truth holds for them too). ok is false when
// none can serve. checks lists every one considered, with its status.
func (r Resolver) Fallback(provider string, now time.Time) (id string, cred store.Credential, ok bool, checks []FallbackCheck) {
	type option struct {
		id, source, envSource string
		cred                  store.Credential
	}
	var opts []option
	for _, ev := range r.Env.Credentials(provider) {
		opts = append(opts, option{"env:" + ev.Var.Name, SourceEnv, ev.Var.Source, ev.Cred})
	}
	switch {
	case r.APIKey != nil:
		if key := r.APIKey(provider); key != "" {
			opts = append(opts, option{"config:providers." + provider + ".apiKey", SourceConfig, "",
				store.Credential{Type: store.TypeAPIKey, Provider: provider, Key: key}})
		}
	case r.ConfigKey != nil && r.ConfigKey(provider):
		opts = append(opts, option{id: "config:providers." + provider + ".apiKey", source: SourceConfig})
	}
	for _, o := range opts {
		fc := FallbackCheck{ID: o.id, Source: o.source, EnvSource: o.envSource, Status: StatusStatic}
		if o.cred.Provider != "" {
			fc.Status = ProfileStatus(o.cred, now)
			if r.Verdict != nil {
				if v := r.Verdict(o.id, o.cred); v.Status != "" {
					fc.Status, fc.Reason = v.Status, v.Reason
				}
			}
		}
		checks = append(checks, fc)
		if !ok && fc.Status != StatusInvalid && fc.Status != StatusExpired {
			id, cred, ok = o.id, o.cred, true
		}
	}
	return id, cred, ok, checks
}

// Decide builds the policy input for q over snap and evaluates the policy:
// the failover loop's first step, and Resolve's.
func (r Resolver) Decide(ctx context.Context, snap *Snapshot, q Query, now time.Time) (*policy.Input, policy.Decision, error) {
	in := q.Into
	if in == nil {
		in = new(policy.Input)
	}
	in = buildInputInto(in, snap, r.Env, r.Order, FactsRequest{
		Agent: q.Agent, Session: q.Session, SessionNew: q.SessionNew, Pin: q.Pin,
		Provider: q.Provider, Model: q.Model, API: q.API, Stream: q.Stream, Verdict: r.Verdict,
		Client: q.Client, Attrs: r.Attrs[q.Agent], Visit: q.Visit, Limits: r.Limits, Usage: r.Usage,
	}, now)
	dec, err := r.Selector.Decide(ctx, in)
	return in, dec, err
}

// Resolve evaluates the policy for q over snap and names the credential
// that would serve, with every profile's role and reason: what the
// failover loop (gateway/failover.go) would try, in its order. A user pin
// is strict: only the pinned profile may serve, with no fallback.
func (r Resolver) Resolve(ctx context.Context, snap *Snapshot, q Query, now time.Time) (*Resolution, error) {
	in, dec, err := r.Decide(ctx, snap, q, now)
	if err != nil {
		return nil, err
	}
	in.ProfileFacts() // the Resolution shows them (explain, status)
	userPin := q.Pin != nil && q.Pin.Source == store.PinUser
	res := &Resolution{
		Provider: q.Provider, Model: q.Model, Source: SourceNone,
		Strict: dec.Strict || userPin, Candidates: []string{}, Profiles: []ProfileReason{},
		Input: in, Decision: dec,
	}
	for _, id := range dec.Candidates {
		c, ok := snap.Profiles[id]
		if ok && c.Provider == q.Provider && (!userPin || id == q.Pin.Profile) {
			res.Candidates = append(res.Candidates, id)
		}
	}
	if eq := dec.Equal(); len(eq) > 1 && !userPin {
		// The gateway serves the least recently used of the policy's
		// equal-rank candidates first (see failover.go): so does this.
		first := leastRecent(eq, func(id string) int64 { return snap.Stats.Get(id).LastUsed })
		if i := slices.Index(res.Candidates, first); i > 0 {
			res.Candidates = slices.Insert(slices.Delete(res.Candidates, i, i+1), 0, first)
		}
	}
	id, _, ok, checks := r.Fallback(q.Provider, now)
	res.Fallbacks = checks
	if len(res.Candidates) > 0 {
		res.Serving, res.Source = res.Candidates[0], SourceProfile
	} else if !userPin && ok {
		res.Serving = id
		for _, c := range checks {
			if c.ID == id {
				res.Source, res.EnvSource = c.Source, c.EnvSource
			}
		}
	}
	res.Profiles = r.reasons(in, dec, res, q, now)
	return res, nil
}

// reasons lists every profile of the provider: candidates in order, then
// cooling (soonest back first), then the rest by id.
func (r Resolver) reasons(in *policy.Input, dec policy.Decision, res *Resolution, q Query, now time.Time) []ProfileReason {
	facts := map[string]policy.ProfileFacts{}
	for _, f := range in.Profiles {
		facts[f.ID] = f
	}
	out := make([]ProfileReason, 0, len(in.Profiles))
	add := func(id, role string) {
		f := facts[id]
		pr := ProfileReason{ID: id, Role: role, Reason: dec.Reasons[id], Type: f.Type, Status: f.Status, Kind: f.Kind}
		if f.CooldownModel != nil {
			pr.CooldownModel = *f.CooldownModel
		}
		if f.DisabledReason != nil && f.DisabledUntil > now.UnixMilli() {
			pr.DisabledReason = *f.DisabledReason
		}
		if f.Scope != nil {
			pr.Scope = *f.Scope
		}
		if role == RoleCooling {
			pr.Until = max(f.CooldownUntil, f.DisabledUntil)
			if f.DisabledUntil <= now.UnixMilli() {
				pr.Until = f.CooldownUntil
			}
		}
		out = append(out, pr)
	}
	for i, id := range res.Candidates {
		add(id, cmpRole(i == 0, RoleServes, RoleCandidate))
	}
	for _, id := range dec.Cooling {
		if _, ok := facts[id]; ok {
			add(id, RoleCooling)
		}
	}
	var rest []string
	for id := range facts {
		if !slices.Contains(res.Candidates, id) && !slices.Contains(dec.Cooling, id) {
			rest = append(rest, id)
		}
	}
	sort.Strings(rest)
	for _, id := range rest {
		add(id, RoleUnused)
		if out[len(out)-1].Reason == "" && q.Pin != nil && q.Pin.Source == store.PinUser {
			out[len(out)-1].Reason = "not used: the session is pinned to " + q.Pin.Profile
		}
	}
	return out
}

func cmpRole(first bool, a, b string) string {
	if first {
		return a
	}
	return b
}

// Order sources, as the built-in policy names them (input.order).
const (
	OrderStore   = "agent store"
	OrderConfig  = "config auth.order"
	OrderBuiltin = "built-in"
)

// OrderInForce is the explicit order the built-in policy starts from for
// a provider: the agent store's, else config auth.order, else none (the
// built-in round-robin: oauth, token, api_key; least recently used first).
// A user policy may still reorder or deny; Resolve shows the result.
func OrderInForce(snap *Snapshot, config map[string][]string, provider string) ([]string, string) {
	if o := snap.Order[provider]; len(o) > 0 {
		return o, OrderStore
	}
	if o := config[provider]; len(o) > 0 {
		return o, OrderConfig
	}
	return []string{}, OrderBuiltin
}
