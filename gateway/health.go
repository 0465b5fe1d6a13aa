package gateway

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// This file says what needs attention (Health, Problem) from the
// resolutions of resolve.go, and which models are worth resolving.

// Severities of a Problem, which are also `models status --check` exit codes.
const (
	NeedsPerson = 1 // expired, invalid, missing, or nothing can serve without a person
	NeedsSoon   = 2 // expires within 24h, or every candidate is cooling
)

// Kinds of a Problem, for scripts and the monitor's one-line form.
const (
	ProblemInvalid      = "invalid"       // a profile the provider module rejects
	ProblemExpired      = "expired"       // a token or login past its expiry
	ProblemMissing      = "missing"       // a profile without a usable secret
	ProblemExpiring     = "expiring"      // expires within ExpiringWithin
	ProblemCooling      = "cooling"       // a model in use whose every candidate is cooling down
	ProblemDisabled     = "disabled"      // a model in use whose profiles are disabled
	ProblemNoCredential = "no-credential" // a model in use with nothing that could serve it
)

// Problem is one thing that needs attention.
type Problem struct {
	Severity int    `json:"severity"` // NeedsPerson or NeedsSoon
	Subject  string `json:"subject"`  // a profile id or provider/model
	Text     string `json:"text"`
	Kind     string `json:"kind"` // one of the Problem* kinds
	// ExpiresAt is an expiring profile's expiry (epoch ms; 0 otherwise).
	ExpiresAt int64 `json:"expiresAt,omitempty"`
}

func (p Problem) String() string { return p.Subject + ": " + p.Text }

// Health is what an agent's credentials would do for each model that
// matters, and what needs attention.
type Health struct {
	Agent    string            `json:"agent"`
	Models   []ModelResolution `json:"models"`
	Problems []Problem         `json:"problems"`
}

// ModelResolution is the Resolution for one model ref.
type ModelResolution struct {
	Ref   string `json:"ref"` // provider/model
	InUse bool   `json:"inUse"`
	*Resolution
	// ForClients names, for each client a profile is scoped to, what
	// serves that client's requests (they may use the scoped profile);
	// "" when nothing can. Nil when no profile is scoped.
	ForClients map[string]string `json:"forClients,omitempty"`
}

// ExitCode is the `--check` exit code: 1 when any problem needs a person
// (it always wins), else 2 when any needs attention soon, else 0.
func (h *Health) ExitCode() int {
	code := 0
	for _, p := range h.Problems {
		if p.Severity == NeedsPerson {
			return NeedsPerson
		}
		code = NeedsSoon
	}
	return code
}

// Model returns the resolution for a provider/model ref, or nil.
func (h *Health) Model(ref string) *ModelResolution {
	for i := range h.Models {
		if h.Models[i].Ref == ref {
			return &h.Models[i]
		}
	}
	return nil
}

// Provider returns the first resolution for provider, in-use models first.
func (h *Health) Provider(provider string) *ModelResolution {
	for i := range h.Models {
		if h.Models[i].Provider == provider {
			return &h.Models[i]
		}
	}
	return nil
}

// RecentWindow is how long a model requested through the gateway counts as
// recent: status commands resolve it like the models in use.
const RecentWindow = 24 * time.Hour

// recentRefresh is how stale a recent model's recorded time may get
// before the gateway notes a request for it again (a state write).
const recentRefresh = 10 * time.Minute

// maxRecentRef bounds the provider/model refs noted as recent.
const maxRecentRef = 256

// noteRecentModel records, at most every recentRefresh per model, that the
// agent asked for the request's model, so Models (in this and other
// processes) resolves it.
func (s *Server) noteRecentModel(rs *reqState, now time.Time) {
	if rs.model == "" || rs.provider == "" {
		return
	}
	if len(rs.provider)+1+len(rs.model) > maxRecentRef {
		return
	}
	var buf [maxRecentRef]byte // looked up without building the string
	ref := append(append(append(buf[:0], rs.provider...), '/'), rs.model...)
	if t, ok := rs.al.snap.Load().Recent[string(ref)]; ok && now.UnixMilli()-t < recentRefresh.Milliseconds() {
		return
	}
	s.live.record(rs.agent, stateOp{recent: string(ref), at: now})
}

// Models lists the model refs worth resolving for an agent: the models in
// use (default and fallbacks) first, then every provider/model with a
// recorded cooldown, then the models requested within RecentWindow (most
// recent first), then, for every other provider with a profile, the
// provider alone (model ""). Refs that are not provider/model are skipped.
func Models(snap *Snapshot, inUse []string, now time.Time) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ref string) {
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	provs := map[string]bool{}
	for _, ref := range inUse {
		if p, m, ok := strings.Cut(ref, "/"); ok && p != "" && m != "" {
			add(ref)
			provs[p] = true
		}
	}
	var cooling []string
	for id, u := range snap.Stats.All() {
		c, ok := snap.Profiles[id]
		if ok && u.CooldownModel != "" && u.CooldownUntil > now.UnixMilli() {
			cooling = append(cooling, c.Provider+"/"+u.CooldownModel)
		}
	}
	sort.Strings(cooling)
	recent := make([]string, 0, len(snap.Recent))
	for ref, t := range snap.Recent {
		if p, m, ok := strings.Cut(ref, "/"); ok && p != "" && m != "" && now.UnixMilli()-t < RecentWindow.Milliseconds() {
			recent = append(recent, ref)
		}
	}
	sort.Slice(recent, func(i, j int) bool {
		a, b := snap.Recent[recent[i]], snap.Recent[recent[j]]
		return a > b || (a == b && recent[i] < recent[j])
	})
	for _, ref := range append(cooling, recent...) {
		add(ref)
		p, _, _ := strings.Cut(ref, "/")
		provs[p] = true
	}
	var rest []string
	for _, c := range snap.Profiles {
		if !provs[c.Provider] {
			provs[c.Provider] = true
			rest = append(rest, c.Provider+"/")
		}
	}
	sort.Strings(rest)
	for _, ref := range rest {
		add(ref)
	}
	return out
}

// Health resolves every ref (provider/model; "provider/" for any model)
// for an agent with no session, and lists what needs attention. inUse
// marks the refs whose provider must be able to serve.
func (r Resolver) Health(ctx context.Context, snap *Snapshot, refs []string, inUse []string, now time.Time) (*Health, error) {
	h := &Health{Agent: snap.Agent, Models: []ModelResolution{}, Problems: []Problem{}}
	for _, ref := range refs {
		p, m, _ := strings.Cut(ref, "/")
		res, err := r.Resolve(ctx, snap, Query{Agent: snap.Agent, Provider: p, Model: m}, now)
		if err != nil {
			return nil, fmt.Errorf("policy decision for %s: %w", ref, err)
		}
		mr := ModelResolution{Ref: ref, InUse: slices.Contains(inUse, ref), Resolution: res}
		for _, pr := range res.Profiles {
			if pr.Scope == "" || mr.ForClients[pr.Scope] != "" {
				continue
			}
			for_, err := r.Resolve(ctx, snap, Query{Agent: snap.Agent, Provider: p, Model: m, Client: policy.ClientFacts{Name: pr.Scope}}, now)
			if err != nil {
				return nil, fmt.Errorf("policy decision for %s (%s requests): %w", ref, pr.Scope, err)
			}
			if mr.ForClients == nil {
				mr.ForClients = map[string]string{}
			}
			mr.ForClients[pr.Scope] = for_.Serving
		}
		h.Models = append(h.Models, mr)
	}
	h.Problems = r.problems(h, snap, now)
	return h, nil
}

// problems lists, profile problems first (by id), then models in use that
// no credential can serve.
func (r Resolver) problems(h *Health, snap *Snapshot, now time.Time) []Problem {
	out := []Problem{}
	seen := map[string]bool{}
	for _, mr := range h.Models {
		for _, pr := range mr.Profiles {
			if seen[pr.ID] {
				continue
			}
			seen[pr.ID] = true
			if p, ok := profileProblem(pr, snap.Profiles[pr.ID], now); ok {
				out = append(out, p)
			}
		}
	}
	for _, mr := range h.Models {
		for _, fc := range mr.Fallbacks {
			if seen[fc.ID] || (fc.Status != StatusInvalid && fc.Status != StatusExpired) {
				continue
			}
			seen[fc.ID] = true
			text := fc.Status
			if fc.Reason != "" {
				text += ": " + fc.Reason
			}
			out = append(out, Problem{Severity: NeedsPerson, Subject: fc.ID, Text: text + " (not used)", Kind: fc.Status})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	for _, mr := range h.Models {
		if mr.InUse && mr.Serving == "" {
			out = append(out, servingProblem(mr))
		}
	}
	return out
}

func profileProblem(pr ProfileReason, c store.Credential, now time.Time) (Problem, bool) {
	switch pr.Status {
	case StatusInvalid:
		return Problem{Severity: NeedsPerson, Subject: pr.ID, Text: "invalid: " + pr.Reason, Kind: ProblemInvalid}, true
	case StatusExpired, StatusMissing:
		if c.RefreshError != "" {
			// A refused OAuth refresh: the provider's answer and the fix.
			return Problem{Severity: NeedsPerson, Subject: pr.ID, Text: "expired: " + c.RefreshError, Kind: ProblemExpired}, true
		}
		return Problem{Severity: NeedsPerson, Subject: pr.ID, Text: pr.Status, Kind: pr.Status}, true
	case StatusExpiring:
		left := time.Duration(c.Expires-now.UnixMilli()) * time.Millisecond
		return Problem{Severity: NeedsSoon, Subject: pr.ID, Text: "expires in " + Human(left), Kind: ProblemExpiring, ExpiresAt: c.Expires}, true
	}
	return Problem{}, false
}

// servingProblem: a model in use that nothing can serve. Waiting helps
// only when every profile that could serve is merely cooling down.
func servingProblem(mr ModelResolution) Problem {
	var cooling, disabled []string
	for _, pr := range mr.Profiles {
		if pr.Role != RoleCooling {
			continue
		}
		if pr.DisabledReason != "" {
			disabled = append(disabled, pr.ID+" ("+pr.DisabledReason+")")
		} else {
			cooling = append(cooling, pr.ID)
		}
	}
	if len(cooling) > 0 && len(disabled) == 0 {
		return Problem{Severity: NeedsSoon, Subject: mr.Ref, Text: "every candidate is cooling down: " + strings.Join(cooling, ", "), Kind: ProblemCooling}
	}
	p := Problem{Severity: NeedsPerson, Subject: mr.Ref, Text: "no credential can serve", Kind: ProblemNoCredential}
	for _, client := range slices.Sorted(maps.Keys(mr.ForClients)) {
		if id := mr.ForClients[client]; id != "" {
			p.Text += fmt.Sprintf(" requests of other clients than %s (%s serves %s only)", client, id, client)
		}
	}
	if len(disabled) > 0 {
		p.Text += "; disabled: " + strings.Join(disabled, ", ")
		p.Kind = ProblemDisabled
	}
	switch {
	case len(mr.Profiles) == 0 && len(mr.Fallbacks) > 0:
		p.Text = "no usable credential: no profile, and the provider module rejects every environment and config credential"
	case len(mr.Profiles) == 0:
		p.Text = "no credential (no profile, environment variable or config key)"
	}
	return p
}
