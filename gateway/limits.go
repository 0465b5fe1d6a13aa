package gateway

import (
	"context"
	"hash/maphash"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// Observer reads the rate-limit facts a provider sends on its answers
// (the modules' optional observe op; *wasm.Registry implements it).
// ObserveHeaders names the header prefixes a provider's module wants and
// is called for every answer, so it must be cheap.
type Observer interface {
	ObserveHeaders(provider string) []string
	Observe(ctx context.Context, provider string, req wasm.ObserveRequest) (wasm.Observation, bool, error)
}

// observeEvery is how often a profile's successful answers are read for
// limits. A module call costs 150-200 µs of CPU (measured on a loaded
// 2-core machine), more than the proxying itself, and a provider such as
// Anthropic sends its headers on every answer; limits are a snapshot, so
// the latest one per interval is as good as all of them. A failing answer
// (429, and anything >= 400) is always read: it is rare and it is news.
const observeEvery = 200 * time.Millisecond

// observeGate lets one answer per credential per observeEvery through,
// without a lock: the first to swap the credential's time wins. (Per
// credential, not per model: models are named by the requests, and the
// gate's entries are never dropped.)
type observeGate struct{ last sync.Map } // limitKey without model → *atomic.Int64 (unix ns)

func (g *observeGate) pass(cred limitKey, status int, now time.Time) bool {
	v, ok := g.last.Load(cred)
	if !ok {
		v, _ = g.last.LoadOrStore(cred, new(atomic.Int64))
	}
	last := v.(*atomic.Int64)
	prev, t := last.Load(), now.UnixNano()
	if status < 400 && t-prev < int64(observeEvery) {
		return false
	}
	return last.CompareAndSwap(prev, t) || status >= 400
}

// observe hands the limits an answer carries to the usage sink. The
// module is called only when the answer has a header it declared (and is
// sent only those), for a success at most once per credential per
// observeEvery; a module failure costs the facts, never the answer (the
// registry logs it). The facts are the credential's (c.owner's profile
// c.id), and the model's alone when the module says the provider keeps
// them per model.
func (s *Server) observe(ctx context.Context, rs *reqState, c candidate, model string, resp *http.Response, now time.Time) {
	if s.observer == nil {
		return
	}
	prefixes := s.observer.ObserveHeaders(rs.provider)
	key := limitKey{owner: c.owner, profile: c.id}
	if len(prefixes) == 0 || !hasLimitHeaders(resp.Header, prefixes) || !s.observeGate.pass(key, resp.StatusCode, now) {
		return
	}
	h := limitHeaders(resp.Header, prefixes)
	obs, ok, err := s.observer.Observe(ctx, rs.provider, wasm.ObserveRequest{Status: resp.StatusCode, Headers: h, Now: now.UnixMilli()})
	if err != nil || !ok {
		return
	}
	l := usage.Limits{Time: now, Agent: c.owner, Provider: rs.provider, Profile: c.id, Model: model,
		Status: obs.Status, ResetAt: msTime(obs.ResetAt), Windows: windows(obs.Windows)}
	if obs.Scope == wasm.ScopeModel {
		key.model = model
	}
	s.limits.set(key, limitFacts(l, resp.StatusCode))
	if s.usage != nil {
		s.usage.Limits(l)
	}
}

// limitFacts is what the policy sees of l (policy.LimitFacts): the
// tightest window's headroom in tenths (1 when no window says), the
// status, and the reset only while rejected, so that facts change in
// steps and not with every answer. A 429's own rejection is left out:
// the failover loop already cools the profile for that model (DESIGN §4,
// scoped to profile and model), and these facts are the profile's.
func limitFacts(l usage.Limits, status int) policy.LimitFacts {
	h := 1.0
	for _, w := range l.Windows {
		if left := w.Headroom(); left >= 0 {
			h = min(h, left)
		}
	}
	f := policy.LimitFacts{Headroom: policy.QuantizeHeadroom(h), Status: l.Status}
	if status == http.StatusTooManyRequests {
		f.Status = ""
		return f
	}
	if l.Status == wasm.StatusRejected {
		f.Headroom = 0
		if !l.ResetAt.IsZero() {
			f.ResetAt = l.ResetAt.UnixMilli()
		}
	}
	return f
}

// limitKey says whose limits: the agent whose store holds the credential
// (owner; "" for a key from the environment or the config), its profile
// id, and the model when the provider keeps the limits per model ("" when
// they are the whole credential's). An agent's own profile and main's
// with the same id are two credentials and never share facts; an agent
// using main's profile shares main's, as it spends main's quota.
type limitKey struct{ owner, profile, model string }

// maxModelLimits bounds the per-model facts kept: model names come from
// requests. Past it, a new model's limits are not kept (its requests see
// the credential's, when known).
const maxModelLimits = 1024

// Limits are the credentials' quantized limits at one moment; Gen changes
// whenever one of them does. Limits never change once published: a new
// generation shares every shard of its predecessor but the one its change
// is in (limitShards), and remembers which profile each of the last
// generations changed (changedSince), so the facts memo rebuilds those
// profiles' facts only.
type Limits struct {
	Gen       uint64
	shards    [limitShards]map[limitKey]policy.LimitFacts // by limitShard(key); nil: empty
	n         int                                         // keys in all shards
	models    map[string]int                              // model → how many keys name it
	modelKeys int                                         // keys that name a model
	// log holds the profile id each generation changed, the last one
	// Gen's; it reaches back at most 2*limitLog generations.
	log []string
}

// limitShards is how many maps a Limits' facts are spread over: a new
// generation copies one of them, about n/limitShards keys, instead of n
// (at a thousand profiles, copying the whole map on every change of a
// credential's facts cost more than the change).
const limitShards = 32

// limitLog is how many generations back (at least) changedSince can say
// what changed; a memo entry older than that is rebuilt in full.
const limitLog = 256

var limitSeed = maphash.MakeSeed()

// limitShard is k's shard: by profile, so all of a profile's keys share one.
func limitShard(k limitKey) int {
	return int(maphash.String(limitSeed, k.profile) % limitShards)
}

func (l *Limits) gen() uint64 {
	if l == nil {
		return 0
	}
	return l.Gen
}

func (l *Limits) get(k limitKey) (policy.LimitFacts, bool) {
	if l == nil {
		return policy.LimitFacts{}, false
	}
	f, ok := l.shards[limitShard(k)][k]
	return f, ok
}

// len is how many keys l holds.
func (l *Limits) len() int {
	if l == nil {
		return 0
	}
	return l.n
}

// changedSince returns the ids of the profiles whose limits changed
// after generation old up to l's (in any owner's store, for any model;
// an id may repeat), and false when l no longer knows (old is older than
// its log, or is not one of its predecessors').
func (l *Limits) changedSince(old uint64) ([]string, bool) {
	g := l.gen()
	switch {
	case old == g:
		return nil, true
	case old > g || g-old > uint64(len(l.log)):
		return nil, false
	}
	return l.log[uint64(len(l.log))-(g-old):], true
}

// of is the limits a request for model sees of owner's profile: the
// model's own and the credential's, the tighter where both are known
// (both apply).
func (l *Limits) of(owner, profile, model string) (policy.LimitFacts, bool) {
	cred, hasCred := l.get(limitKey{owner, profile, ""})
	if model == "" || !l.scoped(model) {
		return cred, hasCred
	}
	per, hasPer := l.get(limitKey{owner, profile, model})
	switch {
	case hasPer && hasCred:
		return tighter(per, cred), true
	case hasPer:
		return per, true
	}
	return cred, hasCred
}

// scoped says whether some credential has limits of its own for model:
// only then do a request's facts depend on its model.
func (l *Limits) scoped(model string) bool { return l != nil && l.models[model] > 0 }

// tighter combines two sets of limits that both apply: the lower
// headroom, the graver status (rejected > warning > allowed > unknown),
// and of two rejections the later reset.
func tighter(a, b policy.LimitFacts) policy.LimitFacts {
	out := a
	out.Headroom = min(a.Headroom, b.Headroom)
	switch ra, rb := statusRank(a.Status), statusRank(b.Status); {
	case rb > ra:
		out.Status, out.ResetAt = b.Status, b.ResetAt
	case rb == ra:
		out.ResetAt = max(a.ResetAt, b.ResetAt)
	}
	return out
}

func statusRank(s string) int {
	switch s {
	case wasm.StatusRejected:
		return 3
	case wasm.StatusWarning:
		return 2
	case wasm.StatusAllowed:
		return 1
	}
	return 0
}

// limitBook publishes Limits copy-on-write: readers Load without a lock,
// and a new generation is made only when a credential's quantized facts
// change, which happens in tenths of its quota, not per answer.
type limitBook struct {
	cur atomic.Pointer[Limits]
	mu  sync.Mutex // serialises writers
}

func (b *limitBook) Load() *Limits { return b.cur.Load() }

func (b *limitBook) set(k limitKey, f policy.LimitFacts) {
	if old, ok := b.cur.Load().get(k); ok && old == f {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.cur.Load()
	old, ok := cur.get(k)
	if ok && old == f {
		return
	}
	next := &Limits{Gen: cur.gen() + 1}
	if cur != nil {
		next.shards, next.n, next.models, next.modelKeys = cur.shards, cur.n, cur.models, cur.modelKeys
		// Only the writer appends to log's array, and only past the
		// end of the latest generation's log: earlier ones never read
		// there.
		next.log = cur.log
	}
	if k.model != "" && !ok {
		if next.modelKeys >= maxModelLimits {
			return
		}
		next.models = maps.Clone(next.models)
		if next.models == nil {
			next.models = map[string]int{}
		}
		next.models[k.model]++
		next.modelKeys++
	}
	if !ok {
		next.n++
	}
	i := limitShard(k)
	shard := make(map[limitKey]policy.LimitFacts, len(next.shards[i])+1)
	maps.Copy(shard, next.shards[i])
	shard[k] = f
	next.shards[i] = shard
	if len(next.log) >= 2*limitLog {
		next.log = slices.Clone(next.log[len(next.log)-limitLog:])
	}
	next.log = append(next.log, k.profile)
	b.cur.Store(next)
}

// hasLimitHeaders says whether a header name starts with one of
// prefixes, without lower-casing (or allocating) for every answer.
func hasLimitHeaders(hdr http.Header, prefixes []string) bool {
	for name := range hdr {
		if hasPrefixFold(name, prefixes) {
			return true
		}
	}
	return false
}

// limitHeaders is the headers whose names start with one of prefixes,
// by lower-case name.
func limitHeaders(hdr http.Header, prefixes []string) map[string]string {
	out := make(map[string]string, 8)
	for name, vals := range hdr {
		if len(vals) > 0 && hasPrefixFold(name, prefixes) {
			out[strings.ToLower(name)] = vals[0]
		}
	}
	return out
}

func hasPrefixFold(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}

func windows(ws []wasm.Window) []usage.Window {
	out := make([]usage.Window, len(ws))
	for i, w := range ws {
		out[i] = usage.Window{Name: w.Name, Limit: orMinus(w.Limit), Remaining: orMinus(w.Remaining),
			Utilization: -1, ResetAt: msTime(w.ResetAt)}
		if w.Utilization != nil {
			out[i].Utilization = *w.Utilization
		}
	}
	return out
}

func orMinus(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func msTime(p *int64) time.Time {
	if p == nil || *p <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(*p)
}

// UsageReader is a Selector that says whether its policies may read the
// usage facts (*policy.Engine: only once a user policy is loaded).
type UsageReader interface {
	ReadsUsage() bool
}

// usageFacts are the usage facts now: nil when no usage is kept, or when
// the policy says it does not read them. Every change of a quantized
// total is a new generation, on which each agent's profile facts are
// built again (a pass over its profiles), so they are given only to a
// policy that may read them.
func (s *Server) usageFacts() *usage.Facts {
	if s.spent == nil {
		return nil
	}
	if r, ok := s.selector.(UsageReader); ok && !r.ReadsUsage() {
		return nil
	}
	return s.spent.Facts()
}
