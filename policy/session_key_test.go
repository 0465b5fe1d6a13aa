package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/ast"
)

// TestBuiltinSessionKey: the built-in policy reads the session's id and
// newness only to follow an auto pin, so the built-in-only cache key
// leaves them out otherwise (sessionRead) and a request that starts a
// session shares the sessionless decision. Proved both ways on the whole
// Rego evaluation (no cache): without an auto pin, any session id and
// newness decide exactly as no session (reasons included); with one, the
// reason names the session, so the key must hold it.
func TestBuiltinSessionKey(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Options{CacheSize: -1})
	e.whole = true
	base := benchInput(12)
	base.Session = SessionFacts{Client: base.Session.Client}
	none := decide(t, e, base)
	for _, pin := range []*Pin{nil, {Profile: "anthropic:p001", Source: "user"}} {
		for _, s := range []SessionFacts{{ID: "s1", New: true}, {ID: "s2"}, {ID: "another session", New: true}} {
			in := *base
			in.Session.ID, in.Session.New, in.Session.Pin = s.ID, s.New, pin
			want := none
			if pin != nil {
				ref := *base
				ref.Session.Pin = pin
				want = decide(t, e, &ref)
			}
			if got := decide(t, e, &in); !reflect.DeepEqual(got, want) {
				t.Errorf("session %q (new %v, pin %+v) decided\n %+v\nnot as without a session id\n %+v", s.ID, s.New, pin, got, want)
			}
			ref := *base
			ref.Session.Pin = pin
			if !bytes.Equal(appendKey(nil, &in, true), appendKey(nil, &ref, true)) {
				t.Errorf("session %q (pin %+v): the built-in key holds what the built-in policy does not read", s.ID, pin)
			}
			if bytes.Equal(appendKey(nil, &in, false), appendKey(nil, &ref, false)) {
				t.Errorf("session %q: the exact key (a user policy may read it) left the session out", s.ID)
			}
		}
	}

	auto := *base
	auto.Session = SessionFacts{ID: "s1", Pin: &Pin{Profile: "anthropic:p002", Source: "auto"}}
	d := decide(t, e, &auto)
	if !strings.Contains(d.Reasons["anthropic:p002"], "s1") {
		t.Fatalf("an auto pin's reason %q does not name the session: the test proves nothing", d.Reasons["anthropic:p002"])
	}
	other := auto
	other.Session.ID = "s9"
	if bytes.Equal(appendKey(nil, &auto, true), appendKey(nil, &other, true)) {
		t.Error("with an auto pin the built-in key leaves out the session id its reason names")
	}
	fresh := auto
	fresh.Session.New = true
	if reflect.DeepEqual(decide(t, e, &fresh), d) {
		t.Fatal("a new session followed its auto pin: newness is read, the test's premise is wrong")
	}
	if bytes.Equal(appendKey(nil, &auto, true), appendKey(nil, &fresh, true)) {
		t.Error("with an auto pin the built-in key leaves out the session's newness")
	}
}

// TestBuiltinReadsSessionOnlyForAutoPin: in the built-in policy files,
// input.session.id and input.session.new are read only by the rules
// that follow an auto pin (auto_pin) and say so (auto_text), which is
// what lets the built-in-only key leave them out without one
// (sessionRead). A new rule reading them elsewhere must change
// sessionRead too.
func TestBuiltinReadsSessionOnlyForAutoPin(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{"auto_pin": true, "auto_text": true}
	found := 0
	for name, m := range builtinModules(t) {
		for _, r := range m.Rules {
			ast.WalkRefs(r, func(ref ast.Ref) bool {
				for _, f := range []string{"input.session.id", "input.session.new"} {
					if ref.HasPrefix(ast.MustParseRef(f)) {
						found++
						if !allowed[r.Head.Ref().String()] {
							t.Errorf("%s:%d: rule %s reads %s; the built-in-only cache key leaves it out unless the session has an auto pin (sessionRead in policy/cache.go)", name, ref[0].Location.Row, r.Head.Ref(), f)
						}
					}
				}
				return false
			})
		}
	}
	if found == 0 {
		t.Fatal("no read of input.session.id or .new found: the test proves nothing")
	}
}
