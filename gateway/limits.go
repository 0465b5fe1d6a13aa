package gateway

import (
	"context"
	"maps"
	"net/http"
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

// observeGate lets one answer per profile per observeEvery through,
// without a lock: the first to swap the profile's time wins.
type observeGate struct{ last sync.Map } // profile id → *atomic.Int64 (unix ns)

func (g *observeGate) pass(profile string, status int, now time.Time) bool {
	v, ok := g.last.Load(profile)
	if !ok {
		v, _ = g.last.LoadOrStore(profile, new(atomic.Int64))
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
// sent only those), for a success at most once per profile per
// observeEvery; a module failure costs the facts, never the answer (the
// registry logs it).
func (s *Server) observe(ctx context.Context, rs *reqState, profile, model string, resp *http.Response, now time.Time) {
	if s.observer == nil {
		return
	}
	prefixes := s.observer.ObserveHeaders(rs.provider)
	if len(prefixes) == 0 || !hasLimitHeaders(resp.Header, prefixes) || !s.observeGate.pass(profile, resp.StatusCode, now) {
		return
	}
	h := limitHeaders(resp.Header, prefixes)
	obs, ok, err := s.observer.Observe(ctx, rs.provider, wasm.ObserveRequest{Status: resp.StatusCode, Headers: h, Now: now.UnixMilli()})
	if err != nil || !ok {
		return
	}
	l := usage.Limits{Time: now, Agent: rs.agent, Provider: rs.provider, Profile: profile, Model: model,
		Status: obs.Status, ResetAt: msTime(obs.ResetAt), Windows: windows(obs.Windows)}
	s.limits.set(profile, limitFacts(l, resp.StatusCode))
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

// Limits are the profiles' quantized limits at one moment; Gen changes
// whenever one of them does (the facts memo rebuilds on it).
type Limits struct {
	Gen uint64
	By  map[string]policy.LimitFacts // by profile id
}

func (l *Limits) gen() uint64 {
	if l == nil {
		return 0
	}
	return l.Gen
}

func (l *Limits) of(profile string) (policy.LimitFacts, bool) {
	if l == nil {
		return policy.LimitFacts{}, false
	}
	f, ok := l.By[profile]
	return f, ok
}

// limitBook publishes Limits copy-on-write: readers Load without a lock,
// and a new map is made only when a profile's quantized facts change,
// which happens in tenths of its quota, not per answer.
type limitBook struct {
	cur atomic.Pointer[Limits]
	mu  sync.Mutex // serialises writers
}

func (b *limitBook) Load() *Limits { return b.cur.Load() }

func (b *limitBook) set(profile string, f policy.LimitFacts) {
	if old, ok := b.cur.Load().of(profile); ok && old == f {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.cur.Load()
	if old, ok := cur.of(profile); ok && old == f {
		return
	}
	next := &Limits{Gen: cur.gen() + 1, By: make(map[string]policy.LimitFacts, 1)}
	if cur != nil {
		maps.Copy(next.By, cur.By)
	}
	next.By[profile] = f
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
