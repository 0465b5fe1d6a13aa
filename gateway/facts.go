package gateway

import (
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// FactsRequest is what BuildInput needs to know about one request.
type FactsRequest struct {
	Agent      string
	Session    string
	SessionNew bool
	Pin        *policy.Pin
	Provider   string
	Model      string
	API        string
	Stream     bool
	Client     policy.ClientFacts
	// Attrs are the agent's attributes (config agents.<id>.attrs).
	Attrs map[string]string
	// Visit is what the gateway knows of the session (its client, start
	// and request count, quantized here for the policy).
	Visit SessionVisit
	// Verdict, when set, refines a profile's status and kind with a
	// provider module's check (status "invalid", kind "setup_token", …).
	Verdict func(id string, c store.Credential) Verdict
	// Limits, when set, gives profiles their input.profiles[i].limits.
	Limits *Limits
	// Usage, when set, gives profiles their input.profiles[i].usage and
	// the agent its input.agent.usage.
	Usage *usage.Facts
}

// gens are the generations of the request's limits and usage facts: a
// memo's facts hold only for the ones they were built with.
func (req *FactsRequest) gens() factsGen {
	return factsGen{limits: req.Limits.gen(), usage: usageGen(req.Usage)}
}

// usageGen is 0 for no usage facts (nil: the profiles' usage is nil) and
// f's generation + 1 otherwise: a usage store's first facts are of
// generation 0, and all zero, not nil.
func usageGen(f *usage.Facts) uint64 {
	if f == nil {
		return 0
	}
	return f.Gen + 1
}

// factsGen is a Limits and a usage.Facts generation.
type factsGen struct{ limits, usage uint64 }

// changedSince returns the profiles whose limits or usage facts changed
// since the generations old, and false when the request's limits or
// usage facts cannot say.
func (req *FactsRequest) changedSince(old factsGen) ([]string, bool) {
	l, ok := req.Limits.changedSince(old.limits)
	if !ok {
		return nil, false
	}
	var u []string
	switch {
	case req.Usage == nil || old.usage == 0:
		if req.Usage != nil || old.usage != 0 {
			return nil, false // from no usage facts to some, or back
		}
	default:
		if u, ok = req.Usage.ChangedSince(old.usage - 1); !ok {
			return nil, false
		}
	}
	return append(slices.Clip(l), u...), true
}

// Verdict is a provider module's word on one credential: the status it
// implies (ModuleStatus), the token kind the module recognised, and why it
// rejected the credential. A zero Status means the module gave no verdict;
// the status then follows from the credential's shape and expiry alone.
type Verdict struct {
	Status string
	Kind   string
	Reason string // "" unless Status is StatusInvalid; never holds the secret
}

// BuildInput turns a snapshot into the policy input for one request
// (DESIGN §5). Only metadata is copied: no secret reaches the input.
//
// The profile facts are prepared once per snapshot and provider (see
// policy.ProfileList) and shared by later inputs while no status changes
// with the clock, so building an input does not cost a pass over every
// profile on every request.
func BuildInput(snap *Snapshot, env Env, configOrder map[string][]string, req FactsRequest, now time.Time) *policy.Input {
	return buildInputInto(new(policy.Input), snap, env, configOrder, req, now)
}

// buildInputInto is BuildInput writing the input to in.
func buildInputInto(in *policy.Input, snap *Snapshot, env Env, configOrder map[string][]string, req FactsRequest, now time.Time) *policy.Input {
	*in = policy.Input{
		Now:   now.UnixMilli(),
		Agent: policy.AgentFacts{ID: req.Agent, Attrs: nonNilMap(req.Attrs), Usage: req.Usage.Agent(req.Agent)},
		Session: policy.SessionFacts{ID: req.Session, New: req.SessionNew, Pin: req.Pin,
			Client: req.Visit.Client, Started: req.Visit.Started, Requests: policy.SessionRequestsBucket(req.Visit.Requests)},
		Request: policy.RequestFacts{Provider: req.Provider, Model: req.Model, API: req.API, Stream: req.Stream, Client: req.Client},
		Order: policy.OrderFacts{
			Store:  nonNil(snap.Order[req.Provider]),
			Config: nonNil(configOrder[req.Provider]),
		},
		Env: []policy.EnvFacts{},
	}
	in.SetProfiles(snap.profileList(req, now))
	for _, ev := range envVarsOf(req.Provider) {
		if v, ok := env[ev.Var]; ok && v.Value != "" {
			in.Env = append(in.Env, policy.EnvFacts{Var: ev.Var, Type: ev.Type})
		}
	}
	return in
}

// factsMemo holds a snapshot's prepared profile facts by provider, each
// valid over a clock interval (statuses turn expiring and expired).
type factsMemo struct {
	mu sync.Mutex
	m  map[factsKey]factsEntry

	// prev is the memo of the snapshot this one's was copied from by a
	// state change, and changed the profiles whose stats may differ from
	// it: a miss here patches prev's facts for those profiles instead of
	// rebuilding every profile's (a success changes one profile's
	// lastUsed; rebuilding a thousand profiles for it cost more than the
	// rest of the request). The profiles themselves are the same along
	// the chain: a reload starts a new one.
	prev    atomic.Pointer[factsMemo] // nil once this memo's facts cover prev's
	changed []string
	depth   int // memos behind this one on the chain; set under agentCache.mu
}

// maxFactsChain bounds how many older snapshots' facts a memo may keep
// alive through prev (and how far a miss looks back).
const maxFactsChain = 8

// maxSkipChanged bounds the changed profiles a memo may carry for the
// memos it skipped (see next).
const maxSkipChanged = 64

// next returns the memo for a copy of the snapshot whose stats changed
// for the changed profiles only. agentCache.apply calls it, holding its
// lock. A memo no request has asked for facts yet is left off the new
// one's chain, its changes carried over: under load several successes
// land between two requests, and such memos only made the chain reach
// maxFactsChain, after which every profile's facts were built again.
func (m *factsMemo) next(changed []string) *factsMemo {
	if m == nil {
		return &factsMemo{}
	}
	m.trim()
	if prev := m.prev.Load(); prev != nil && m.empty() && len(m.changed)+len(changed) <= maxSkipChanged {
		n := &factsMemo{changed: append(slices.Clip(m.changed), changed...), depth: m.depth}
		n.prev.Store(prev)
		return n
	}
	if m.depth >= maxFactsChain {
		return &factsMemo{}
	}
	n := &factsMemo{changed: changed, depth: m.depth + 1}
	n.prev.Store(m)
	return n
}

// empty says whether m holds no facts.
func (m *factsMemo) empty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m) == 0
}

// trim drops m's chain when m holds facts for every key the memos behind
// it hold: a miss on m's successors then finds its base in m, and the
// older snapshots' facts need not be kept. (Dropping the chain never
// changes a result: a miss without a base rebuilds every profile.)
func (m *factsMemo) trim() {
	m.mu.Lock()
	have := maps.Clone(m.m)
	m.mu.Unlock()
	for p := m.prev.Load(); p != nil; p = p.prev.Load() {
		p.mu.Lock()
		for k := range p.m {
			if _, ok := have[k]; !ok {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
	}
	m.prev.Store(nil)
	m.depth = 0
}

// lookup returns the memo's entry for key when it holds at ms for
// the limits and usage generations gen.
func (m *factsMemo) lookup(key factsKey, ms int64, gen factsGen) (factsEntry, bool) {
	m.mu.Lock()
	e, ok := m.m[key]
	m.mu.Unlock()
	return e, ok && e.lo <= ms && ms < e.hi && e.gen == gen
}

// earlier finds the nearest memo on m's chain (m itself included) with
// an entry for key that holds at ms and can be brought to gen, and every
// profile whose facts may differ from that entry's: those whose stats
// changed since that memo's snapshot, and those whose limits or usage
// changed since the entry's generations (since says which, or false when
// it cannot).
func (m *factsMemo) earlier(key factsKey, ms int64, gen factsGen, since func(factsGen) ([]string, bool)) (factsEntry, []string, bool) {
	var changed []string
	for p := m; p != nil; {
		if e, ok := p.entry(key, ms); ok {
			if e.gen == gen {
				return e, changed, true
			}
			if more, ok := since(e.gen); ok {
				return e, append(changed, more...), true
			}
		}
		prev := p.prev.Load()
		if prev == nil {
			break
		}
		changed = append(changed, p.changed...)
		p = prev
	}
	return factsEntry{}, nil, false
}

// entry returns the memo's entry for key when it holds at ms, whatever
// its generations.
func (m *factsMemo) entry(key factsKey, ms int64) (factsEntry, bool) {
	m.mu.Lock()
	e, ok := m.m[key]
	m.mu.Unlock()
	return e, ok && e.lo <= ms && ms < e.hi
}

// factsKey says whose facts: module verdicts are asked for only when the
// request has a Verdict function.
type factsKey struct {
	provider string
	verdicts bool
	model    string // set when some profile has limits for this model alone
}

// factsKey is the memo key of req's facts.
func (req *FactsRequest) factsKey() factsKey {
	key := factsKey{req.Provider, req.Verdict != nil, ""}
	if req.Limits.scoped(req.Model) {
		key.model = req.Model // some credential's limits are this model's own
	}
	return key
}

type factsEntry struct {
	list   *policy.ProfileList
	lo, hi int64    // valid while lo <= now (ms) < hi
	gen    factsGen // the limits and usage generations the facts were built with
}

// profileList returns the prepared facts of the snapshot's profiles for
// req's provider at now, from the memo when they still hold.
func (snap *Snapshot) profileList(req FactsRequest, now time.Time) *policy.ProfileList {
	key := req.factsKey()
	ms := now.UnixMilli()
	gen := req.gens()
	var (
		list   *policy.ProfileList
		lo, hi int64
		stable bool
	)
	if m := snap.facts; m != nil {
		if e, ok := m.lookup(key, ms, gen); ok {
			return e.list
		}
		if e, changed, ok := m.earlier(key, ms, gen, req.changedSince); ok {
			var at []policy.IndexedFact
			switch at, stable = patchFacts(snap, e.list, changed, req, now); {
			case at == nil: // rebuilt below
			case len(at) == 0:
				list, lo, hi = e.list, e.lo, e.hi
			default:
				list, lo, hi = e.list.With(at), e.lo, e.hi
			}
		}
	}
	if list == nil {
		var facts []policy.ProfileFacts
		facts, lo, hi, stable = profileFacts(snap, req, now)
		list = policy.NewProfileList(facts)
	}
	if m := snap.facts; m != nil && stable {
		m.mu.Lock()
		if m.m == nil {
			m.m = map[factsKey]factsEntry{}
		}
		m.m[key] = factsEntry{list: list, lo: lo, hi: hi, gen: gen}
		m.mu.Unlock()
	}
	return list
}

// profileFacts builds the facts of the snapshot's profiles for req's
// provider, sorted by id, and the clock interval [lo, hi) (ms) over which
// their statuses hold. stable is false when a module could not give its
// verdict on some profile: such facts are not worth keeping.
func profileFacts(snap *Snapshot, req FactsRequest, now time.Time) (facts []policy.ProfileFacts, lo, hi int64, stable bool) {
	ms := now.UnixMilli()
	lo, hi, stable = math.MinInt64, math.MaxInt64, true
	boundary := func(t int64) {
		if t <= ms {
			lo = max(lo, t)
		} else {
			hi = min(hi, t)
		}
	}
	ids := make([]string, 0, len(snap.Profiles))
	for id, c := range snap.Profiles {
		if c.Provider == req.Provider {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	facts = make([]policy.ProfileFacts, 0, len(ids))
	for _, id := range ids {
		c := snap.Profiles[id]
		pf, ok := profileFact(snap, id, c, req, now)
		stable = stable && ok
		if c.Expires != 0 {
			// ProfileStatus and ModuleStatus change only here.
			boundary(c.Expires - ExpiringWithin.Milliseconds())
			boundary(c.Expires)
		}
		facts = append(facts, pf)
	}
	return facts, lo, hi, stable
}

// patchFacts returns the facts of the changed profiles built again from
// snap, at their indices in base, the prepared facts of an earlier
// snapshot with the same profiles (non-nil; nil when some changed profile
// is not in base: the caller rebuilds them all). stable is as for
// profileFacts. The clock interval is base's: the credentials, whose
// expiry alone sets it, are the same.
func patchFacts(snap *Snapshot, base *policy.ProfileList, changed []string, req FactsRequest, now time.Time) (at []policy.IndexedFact, stable bool) {
	at, stable = make([]policy.IndexedFact, 0, len(changed)), true
	for _, id := range changed {
		c, ok := snap.Profiles[id]
		if !ok || c.Provider != req.Provider {
			continue
		}
		i, found := base.Index(id)
		if !found { // cannot happen: the profiles are the same
			return nil, false
		}
		pf, ok := profileFact(snap, id, c, req, now)
		at, stable = append(at, policy.IndexedFact{At: i, Fact: pf}), stable && ok
	}
	return at, stable
}

// profileFact builds one profile's facts; ok is false when req asks for
// module verdicts and the module could not give one.
func profileFact(snap *Snapshot, id string, c store.Credential, req FactsRequest, now time.Time) (pf policy.ProfileFacts, ok bool) {
	ok = true
	st := snap.Stats.Get(id)
	pf = policy.ProfileFacts{
		ID:            id,
		Provider:      c.Provider,
		Type:          c.Type,
		Status:        ProfileStatus(c, now),
		Kind:          defaultKind(c),
		LastUsed:      st.LastUsed,
		CooldownUntil: st.CooldownUntil,
		DisabledUntil: st.DisabledUntil,
		ErrorCount:    st.ErrorCount,
	}
	if st.CooldownModel != "" {
		// A rate limit is scoped to profile + model; the policy
		// decides whether it blocks this request's model.
		m := st.CooldownModel
		pf.CooldownModel = &m
	}
	if req.Verdict != nil {
		if v := req.Verdict(id, c); v.Status != "" {
			pf.Status, pf.Kind = v.Status, v.Kind
		} else {
			ok = false
		}
	}
	if c.Expires != 0 {
		e := c.Expires
		pf.ExpiresAt = &e
	}
	if c.Email != "" {
		e := c.Email
		pf.Email = &e
	}
	if st.DisabledReason != "" {
		r := st.DisabledReason
		pf.DisabledReason = &r
	}
	if st.Scope != "" {
		s := st.Scope
		pf.Scope = &s
	}
	if l, has := req.Limits.of(snap.Owner[id], id, req.Model); has {
		pf.Limits = &l
	}
	pf.Usage = req.Usage.Profile(snap.Owner[id], id) // the credential's: main's for one inherited, "" for an env/config key
	return pf, ok
}

func defaultKind(c store.Credential) string {
	switch c.Type {
	case store.TypeAPIKey:
		return "api_key"
	case store.TypeOAuth:
		return "oauth_access"
	}
	return "unknown"
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
