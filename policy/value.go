package policy

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// value converts in to the Rego input document directly, without a JSON
// round trip. Nil slices become empty arrays and nil pointers null, exactly
// as the JSON encoding of Input would show them (except nil slices, which
// JSON would render as null).
func (in *Input) value(memo *termMemo) ast.Value {
	return in.valueWithUsage(memo.profiles(in.Profiles), memo.agentUsage(in.Agent.Usage))
}

// valueWith is value with the given input.profiles.
func (in *Input) valueWith(profiles *ast.Term) ast.Value {
	return in.valueWithUsage(profiles, usageTerm(in.Agent.Usage))
}

// valueWithUsage is value with the given input.profiles and
// input.agent.usage.
func (in *Input) valueWithUsage(profiles, agentUsage *ast.Term) ast.Value {
	return ast.NewObject(
		item("now", intTerm(in.Now)),
		item("agent", ast.ObjectTerm(
			item("id", ast.StringTerm(in.Agent.ID)),
			item("attrs", attrsTerm(in.Agent.Attrs)),
			item("usage", agentUsage),
		)),
		item("session", ast.ObjectTerm(
			item("id", ast.StringTerm(in.Session.ID)),
			item("new", ast.InternedTerm(in.Session.New)),
			item("pin", pinTerm(in.Session.Pin)),
			item("client", clientTerm(in.Session.Client)),
			item("started", intTerm(in.Session.Started)),
			item("requests", intTerm(in.Session.Requests)),
		)),
		item("request", ast.ObjectTerm(
			item("provider", ast.StringTerm(in.Request.Provider)),
			item("model", ast.StringTerm(in.Request.Model)),
			item("api", ast.StringTerm(in.Request.API)),
			item("stream", ast.InternedTerm(in.Request.Stream)),
			item("client", clientTerm(in.Request.Client)),
		)),
		item("order", ast.ObjectTerm(
			item("store", stringsTerm(in.Order.Store)),
			item("config", stringsTerm(in.Order.Config)),
		)),
		item("profiles", profiles),
		item("env", envTerm(in.Env)),
	)
}

// keyTerms holds one shared term per object key of the input document, so
// building the input (on every uncached decision) does not allocate a key
// term per profile field. Like OPA's interned terms, they must never be
// modified.
var keyTerms = func() map[string]*ast.Term {
	m := make(map[string]*ast.Term)
	for _, k := range []string{
		"now", "agent", "id", "session", "new", "pin", "request", "provider",
		"model", "api", "stream", "order", "store", "config", "profiles", "env",
		"profile", "source", "type", "status", "kind", "expiresAt", "email",
		"lastUsed", "cooldownUntil", "cooldownModel", "disabledUntil",
		"disabledReason", "errorCount", "var", "client", "name", "version",
		"attrs", "started", "requests", "scope", "limits", "headroom", "resetAt",
		"usage", "1h", "5h", "24h", "30d", "tokens", "inputTokens", "outputTokens",
		"cacheReadTokens", "cacheWriteTokens", "cost",
	} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

func item(k string, v *ast.Term) [2]*ast.Term {
	t, ok := keyTerms[k]
	if !ok {
		t = ast.StringTerm(k)
	}
	return ast.Item(t, v)
}

func intTerm(n int64) *ast.Term {
	if n >= 0 && n <= 512 {
		return ast.InternedTerm(int(n)) // shared, never modified
	}
	return ast.NumberTerm(json.Number(strconv.FormatInt(n, 10)))
}

func optInt(n *int64) *ast.Term {
	if n == nil {
		return ast.InternedNullTerm
	}
	return intTerm(*n)
}

func optString(s *string) *ast.Term {
	if s == nil {
		return ast.InternedNullTerm
	}
	return ast.StringTerm(*s)
}

func pinTerm(p *Pin) *ast.Term {
	if p == nil {
		return ast.InternedNullTerm
	}
	return ast.ObjectTerm(item("profile", ast.StringTerm(p.Profile)), item("source", ast.StringTerm(p.Source)))
}

func clientTerm(c ClientFacts) *ast.Term {
	return ast.ObjectTerm(item("name", ast.StringTerm(c.Name)), item("version", ast.StringTerm(c.Version)))
}

// attrsTerm renders a string map as an object ({} when nil).
func attrsTerm(m map[string]string) *ast.Term {
	kvs := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	return ast.ObjectTerm(kvs...)
}

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

// termMemo keeps the Rego term of each profile the engine has converted,
// so an input whose profiles mostly did not change since the last decision
// (one cooldown set, one lastUsed moved) converts only the ones that did.
// Terms are shared between evaluations and never modified (like OPA's
// interned terms). A nil memo converts everything.
type termMemo struct {
	mu    sync.Mutex
	m     map[string]memoTerm // profile id → its last facts and term
	usage *memoUsage          // the last agent usage converted
}

type memoUsage struct {
	f UsageFacts
	t *ast.Term
}

// agentUsage is input.agent.usage's term, the last one while the facts
// stay the same (they move in quantized steps, not per request).
func (m *termMemo) agentUsage(u *UsageFacts) *ast.Term {
	if m == nil || u == nil {
		return usageTerm(u)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.usage != nil && m.usage.f == *u {
		return m.usage.t
	}
	m.usage = &memoUsage{f: *u, t: usageTerm(u)}
	return m.usage.t
}

type memoTerm struct {
	f ProfileFacts // a deep copy: the caller may reuse its pointers
	t *ast.Term
}

// maxMemoTerms bounds the memo: about the profiles of every agent in use.
const maxMemoTerms = 16384

func (m *termMemo) profiles(ps []ProfileFacts) *ast.Term {
	ts := make([]*ast.Term, len(ps))
	if m == nil {
		for i := range ps {
			ts[i] = profileTerm(&ps[i])
		}
		return ast.ArrayTerm(ts...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m)+len(ps) > maxMemoTerms {
		m.m = make(map[string]memoTerm, len(ps))
	}
	for i := range ps {
		p := &ps[i]
		if e, ok := m.m[p.ID]; ok && sameFacts(&e.f, p) {
			ts[i] = e.t
			continue
		}
		ts[i] = profileTerm(p)
		m.m[p.ID] = memoTerm{f: copyFacts(p), t: ts[i]}
	}
	return ast.ArrayTerm(ts...)
}

func sameFacts(a, b *ProfileFacts) bool {
	return a.ID == b.ID && a.Provider == b.Provider && a.Type == b.Type && a.Status == b.Status &&
		a.Kind == b.Kind && sameOpt(a.ExpiresAt, b.ExpiresAt) && sameOpt(a.Email, b.Email) &&
		a.LastUsed == b.LastUsed && a.CooldownUntil == b.CooldownUntil &&
		sameOpt(a.CooldownModel, b.CooldownModel) && a.DisabledUntil == b.DisabledUntil &&
		sameOpt(a.DisabledReason, b.DisabledReason) && a.ErrorCount == b.ErrorCount &&
		sameOpt(a.Scope, b.Scope) && sameOpt(a.Limits, b.Limits) && sameOpt(a.Usage, b.Usage)
}

func sameOpt[T comparable](a, b *T) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

func copyFacts(p *ProfileFacts) ProfileFacts {
	c := *p
	c.ExpiresAt = copyOpt(p.ExpiresAt)
	c.Email = copyOpt(p.Email)
	c.CooldownModel = copyOpt(p.CooldownModel)
	c.DisabledReason = copyOpt(p.DisabledReason)
	c.Scope = copyOpt(p.Scope)
	c.Limits = copyOpt(p.Limits)
	c.Usage = copyOpt(p.Usage)
	return c
}

func copyOpt[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// sharedStrings holds one term for each of the values provider, type,
// status and kind usually take, shared by every profile term.
var sharedStrings = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{"", "oauth", "token", "api_key", "ok", "static", "expiring", "expired",
		"invalid", "missing", "setup_token", "oauth_access", "unknown"} {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

func str(s string) *ast.Term {
	if t, ok := sharedStrings[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

func profileTerm(p *ProfileFacts) *ast.Term {
	return ast.ObjectTerm(
		item("id", ast.StringTerm(p.ID)),
		item("provider", ast.StringTerm(p.Provider)),
		item("type", str(p.Type)),
		item("status", str(p.Status)),
		item("kind", str(p.Kind)),
		item("expiresAt", optInt(p.ExpiresAt)),
		item("email", optString(p.Email)),
		item("lastUsed", intTerm(p.LastUsed)),
		item("cooldownUntil", intTerm(p.CooldownUntil)),
		item("cooldownModel", optString(p.CooldownModel)),
		item("disabledUntil", intTerm(p.DisabledUntil)),
		item("disabledReason", optString(p.DisabledReason)),
		item("errorCount", intTerm(int64(p.ErrorCount))),
		item("scope", optString(p.Scope)),
		item("limits", limitsTerm(p.Limits)),
		item("usage", usageTerm(p.Usage)),
	)
}

// usageTerm renders usage facts (null when nil).
func usageTerm(u *UsageFacts) *ast.Term {
	if u == nil {
		return ast.InternedNullTerm
	}
	return ast.ObjectTerm(
		item("1h", totalsTerm(&u.H1)),
		item("5h", totalsTerm(&u.H5)),
		item("24h", totalsTerm(&u.H24)),
		item("30d", totalsTerm(&u.D30)),
	)
}

func totalsTerm(t *UsageTotals) *ast.Term {
	return ast.ObjectTerm(
		item("requests", intTerm(t.Requests)),
		item("tokens", intTerm(t.Tokens)),
		item("inputTokens", intTerm(t.Input)),
		item("outputTokens", intTerm(t.Output)),
		item("cacheReadTokens", intTerm(t.CacheRead)),
		item("cacheWriteTokens", intTerm(t.CacheWrite)),
		item("cost", ast.FloatNumberTerm(t.Cost)),
	)
}

func limitsTerm(l *LimitFacts) *ast.Term {
	if l == nil {
		return ast.NullTerm()
	}
	return ast.ObjectTerm(
		item("headroom", ast.FloatNumberTerm(l.Headroom)),
		item("status", str(l.Status)),
		item("resetAt", intTerm(l.ResetAt)),
	)
}

func envTerm(es []EnvFacts) *ast.Term {
	ts := make([]*ast.Term, len(es))
	for i, e := range es {
		ts[i] = ast.ObjectTerm(item("var", ast.StringTerm(e.Var)), item("type", ast.StringTerm(e.Type)))
	}
	return ast.ArrayTerm(ts...)
}
