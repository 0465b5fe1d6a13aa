package gateway

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestSessionTableConcurrent: pins of many sessions race with readers and
// with a reload replacing the table (run with -race). Every pin made
// after the last replace is there at the end, a pin that changes nothing
// reports so, and a reader never sees a half-made session.
func TestSessionTableConcurrent(t *testing.T) {
	var a agentLive
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	a.sessions.replace(map[string]store.Session{"old": {AuthProfileOverride: "anthropic:x", AuthProfileOverrideSource: store.PinAuto}})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() { // pins
			defer wg.Done()
			for i := range 500 {
				op := sessionOp{session: fmt.Sprintf("s%d-%d", w, i), profile: "anthropic:a", at: at}
				if !a.pin(op) {
					t.Errorf("a new session %s was not pinned", op.session)
				}
				if a.pin(op) {
					t.Errorf("pinning %s again to the same profile reported a change", op.session)
				}
			}
		}()
		go func() { // readers
			defer wg.Done()
			for i := range 2000 {
				s, ok := a.sessions.get(fmt.Sprintf("s%d-%d", w, i%500))
				if ok && (s.AuthProfileOverride != "anthropic:a" || s.CreatedAt != at.UnixMilli()) {
					t.Errorf("read a session half made: %+v", s)
				}
			}
		}()
	}
	wg.Wait()
	for w := range 4 {
		for i := range 500 {
			if s, ok := a.sessions.get(fmt.Sprintf("s%d-%d", w, i)); !ok || s.AuthProfileOverrideSource != store.PinAuto {
				t.Fatalf("session s%d-%d: %+v, %v after the run", w, i, s, ok)
			}
		}
	}
	if s, ok := a.sessions.get("old"); !ok || s.AuthProfileOverride != "anthropic:x" {
		t.Fatalf("the reload's session: %+v, %v", s, ok)
	}
	a.sessions.replace(map[string]store.Session{})
	if _, ok := a.sessions.get("s0-0"); ok {
		t.Fatal("a replaced table still answers for its old sessions")
	}
}

// BenchmarkSessionPin: a request starting a new session pins it in an
// agent holding n sessions (gateway.sessions.maxPerAgent is 1000 by
// default). The pin used to copy the whole table (O(n) per new session).
func BenchmarkSessionPin(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var a agentLive
			m := map[string]store.Session{}
			for i := range n {
				m[fmt.Sprint("old", i)] = store.Session{AuthProfileOverride: "anthropic:a"}
			}
			a.sessions.replace(m)
			at := time.Now()
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprint("new", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				a.pin(sessionOp{session: ids[i], profile: "anthropic:b", at: at})
			}
		})
	}
}
