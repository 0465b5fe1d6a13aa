package gateway

import (
	"net/http"
	"testing"
	"time"
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
		if got := g.pass(s.profile, s.status, t0.Add(s.at)); got != s.want {
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
