package gateway

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

func TestObserveGate(t *testing.T) {
	t.Parallel()
	var g observeGate
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		profile string
		status  int
		at      time.Duration
		want    bool
	}{
		{"a", 200, 0, true},
		{"a", 200, observeEvery / 2, false}, // too soon
		{"b", 200, observeEvery / 2, true},  // another profile has its own clock
		{"a", 429, observeEvery / 2, true},  // a failure is always read
		{"a", 200, observeEvery, false},     // the 429 restarted a's interval
		{"a", 200, observeEvery*3/2 + 1, true},
	}
	for i, s := range steps {
		if got := g.pass(limitKey{profile: s.profile}, s.status, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d %+v: pass = %v", i, s, got)
		}
	}
}

func TestLimitHeaders(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("Anthropic-Ratelimit-Tokens-Remaining", "5")
	h.Set("Retry-After", "3")
	h.Set("Content-Type", "application/json")
	prefixes := []string{"anthropic-ratelimit-", "retry-after"}
	if !hasLimitHeaders(h, prefixes) || hasLimitHeaders(h, []string{"x-ratelimit-"}) {
		t.Error("hasLimitHeaders")
	}
	got := limitHeaders(h, prefixes)
	if len(got) != 2 || got["anthropic-ratelimit-tokens-remaining"] != "5" || got["retry-after"] != "3" {
		t.Errorf("limitHeaders = %v", got)
	}
}

func TestLimitFacts(t *testing.T) {
	t.Parallel()
	reset := time.UnixMilli(1_800_000_060_000)
	ws := []usage.Window{{Name: "requests", Utilization: 0.05}, {Name: "tokens", Utilization: 0.66}, {Name: "odd", Utilization: -1}}
	for _, tc := range []struct {
		name   string
		l      usage.Limits
		status int
		want   policy.LimitFacts
	}{
		{"tightest window, rounded down", usage.Limits{Status: "allowed", Windows: ws}, 200, policy.LimitFacts{Headroom: 0.3, Status: "allowed"}},
		{"no window says: full", usage.Limits{Status: "warning"}, 200, policy.LimitFacts{Headroom: 1, Status: "warning"}},
		{"rejected keeps its reset", usage.Limits{Status: "rejected", ResetAt: reset, Windows: ws}, 200,
			policy.LimitFacts{Headroom: 0, Status: "rejected", ResetAt: reset.UnixMilli()}},
		{"a 429's rejection is the cooldown's", usage.Limits{Status: "rejected", ResetAt: reset, Windows: ws}, 429,
			policy.LimitFacts{Headroom: 0.3}},
	} {
		if got := limitFacts(tc.l, tc.status); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestLimitBook(t *testing.T) {
	t.Parallel()
	var b limitBook
	if b.Load() != nil {
		t.Fatal("a new book has limits")
	}
	b.set(limitKey{profile: "a"}, policy.LimitFacts{Headroom: 0.5})
	first := b.Load()
	b.set(limitKey{profile: "a"}, policy.LimitFacts{Headroom: 0.5}) // unchanged: no new generation
	if b.Load() != first || first.Gen != 1 {
		t.Fatalf("gen %d", b.Load().Gen)
	}
	b.set(limitKey{profile: "b"}, policy.LimitFacts{Headroom: 0.1})
	if l := b.Load(); l.Gen != 2 || l.len() != 2 || first.len() != 1 {
		t.Errorf("after b: %+v (first %+v)", l, first)
	}
}

// TestLimitsOfModel: a request sees its model's limits and the
// credential's, the tighter of both; a model never answered sees the
// credential's; the per-model entries are bounded.
func TestLimitsOfModel(t *testing.T) {
	t.Parallel()
	var b limitBook
	cred := limitKey{owner: "main", profile: "p"}
	perA := limitKey{owner: "main", profile: "p", model: "a"}
	b.set(cred, policy.LimitFacts{Headroom: 0.6, Status: "allowed"})
	b.set(perA, policy.LimitFacts{Headroom: 0.8, Status: "warning"})
	l := b.Load()
	if got, _ := l.of("main", "p", "a"); got != (policy.LimitFacts{Headroom: 0.6, Status: "warning"}) {
		t.Errorf("model a: %+v", got)
	}
	if got, _ := l.of("main", "p", "b"); got != (policy.LimitFacts{Headroom: 0.6, Status: "allowed"}) {
		t.Errorf("model b: %+v", got)
	}
	if _, ok := l.of("work", "p", "a"); ok {
		t.Error("another agent's profile p has main's limits")
	}
	if !l.scoped("a") || l.scoped("b") {
		t.Error("scoped")
	}
	b.set(perA, policy.LimitFacts{Status: "rejected", ResetAt: 5})
	b.set(cred, policy.LimitFacts{Headroom: 0.1, Status: "rejected", ResetAt: 9})
	if got, _ := b.Load().of("main", "p", "a"); got != (policy.LimitFacts{Status: "rejected", ResetAt: 9}) {
		t.Errorf("both rejected: %+v, want the later reset", got)
	}
	for i := range maxModelLimits + 10 {
		b.set(limitKey{owner: "main", profile: "q", model: fmt.Sprint("m", i)}, policy.LimitFacts{Headroom: 0.5})
	}
	if l := b.Load(); l.modelKeys != maxModelLimits || l.len() != maxModelLimits+1 {
		t.Errorf("%d model keys, %d in all; want at most %d per-model", l.modelKeys, l.len(), maxModelLimits)
	}
}
