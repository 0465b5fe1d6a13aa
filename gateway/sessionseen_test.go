package gateway

import (
	"fmt"
	"testing"

	"github.com/opensoul/opensoul/policy"
)

// TestSessionsSeenBounded: the record of sessions stays within
// maxSeenSessions, and what it forgets is the least recently used.
func TestSessionsSeenBounded(t *testing.T) {
	t.Parallel()
	var s sessionsSeen
	c := policy.ClientFacts{Name: "curl"}
	s.visit("keep", c, 0)
	for i := range 3 * maxSeenSessions {
		now := int64(i + 1)
		s.visit(fmt.Sprint(i), c, now)
		s.visit("keep", c, now) // used on every step: never the oldest
		if n := len(s.m); n > maxSeenSessions {
			t.Fatalf("%d sessions remembered, bound %d", n, maxSeenSessions)
		}
	}
	if v := s.visit("keep", c, 1<<40); v.Requests != 3*maxSeenSessions+2 || v.Started != 0 {
		t.Errorf("the busiest session was forgotten: %+v", v)
	}
	if _, ok := s.m["0"]; ok {
		t.Error("the oldest session is still remembered")
	}
}

func TestSessionRequestsBucket(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]int64{-1: 0, 0: 0, 1: 1, 2: 2, 3: 2, 4: 4, 7: 4, 8: 8, 1000: 512, 1 << 40: 1 << 40} {
		if got := policy.SessionRequestsBucket(n); got != want {
			t.Errorf("SessionRequestsBucket(%d) = %d, want %d", n, got, want)
		}
	}
}
