package policy

import (
	"encoding/json"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// value converts in to the Rego input document directly, without a JSON
// round trip. Nil slices become empty arrays and nil pointers null, exactly
// as the JSON encoding of Input would show them (except nil slices, which
// JSON would render as null).
func (in *Input) value() ast.Value {
	return ast.NewObject(
		item("now", intTerm(in.Now)),
		item("agent", ast.ObjectTerm(item("id", ast.StringTerm(in.Agent.ID)))),
		item("session", ast.ObjectTerm(
			item("id", ast.StringTerm(in.Session.ID)),
			item("new", ast.InternedTerm(in.Session.New)),
			item("pin", pinTerm(in.Session.Pin)),
		)),
		item("request", ast.ObjectTerm(
			item("provider", ast.StringTerm(in.Request.Provider)),
			item("model", ast.StringTerm(in.Request.Model)),
			item("api", ast.StringTerm(in.Request.API)),
			item("stream", ast.InternedTerm(in.Request.Stream)),
			item("client", ast.ObjectTerm(
				item("name", ast.StringTerm(in.Request.Client.Name)),
				item("version", ast.StringTerm(in.Request.Client.Version)),
			)),
		)),
		item("order", ast.ObjectTerm(
			item("store", stringsTerm(in.Order.Store)),
			item("config", stringsTerm(in.Order.Config)),
		)),
		item("profiles", profilesTerm(in.Profiles)),
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

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func profilesTerm(ps []ProfileFacts) *ast.Term {
	ts := make([]*ast.Term, len(ps))
	// Provider, type, status and kind repeat across profiles: one term per
	// distinct string, shared within this input (terms are never modified).
	shared := make(map[string]*ast.Term, 8)
	str := func(s string) *ast.Term {
		t, ok := shared[s]
		if !ok {
			t = ast.StringTerm(s)
			shared[s] = t
		}
		return t
	}
	for i := range ps {
		p := &ps[i]
		ts[i] = ast.ObjectTerm(
			item("id", ast.StringTerm(p.ID)),
			item("provider", str(p.Provider)),
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
		)
	}
	return ast.ArrayTerm(ts...)
}

func envTerm(es []EnvFacts) *ast.Term {
	ts := make([]*ast.Term, len(es))
	for i, e := range es {
		ts[i] = ast.ObjectTerm(item("var", ast.StringTerm(e.Var)), item("type", ast.StringTerm(e.Type)))
	}
	return ast.ArrayTerm(ts...)
}
