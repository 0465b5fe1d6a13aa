package gateway_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

func fourKeys(f *fixture) []string {
	keys := []string{keyA, keyB, keyA + "-c", keyB + "-d"}
	creds := map[string]store.Credential{}
	for i, k := range keys {
		creds["anthropic:"+string(rune('a'+i))] = anthropicKey(k)
		f.anthropic.set(k, answer{})
	}
	f.profiles("main", creds, nil)
	return keys
}

// TestSessionlessRotates: requests that name no session spread over every
// key, even concurrent ones within one clock tick (the fixture's clock
// never moves here); a stored auto pin of the default session is ignored.
func TestSessionlessRotates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	f.st.UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["default"] = &store.Session{AuthProfileOverride: "anthropic:a", AuthProfileOverrideSource: store.PinAuto}
		return nil
	})
	served := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				resp, body := f.messages("claude-sonnet-5", nil)
				if resp.StatusCode != 200 {
					t.Errorf("status %d: %s", resp.StatusCode, body)
					return
				}
				mu.Lock()
				served[resp.Header.Get("x-opensoul-profile")]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range []string{"anthropic:a", "anthropic:b", "anthropic:c", "anthropic:d"} {
		if n := served[id]; n < 6 || n > 14 { // 40 requests: 10 each when rotating, 15–35% allowed
			t.Errorf("%s served %d of 40 requests (%v); session-less traffic must rotate", id, n, served)
		}
	}
	if s := f.sessions("main")["default"]; s.AuthProfileOverride != "anthropic:a" {
		t.Errorf("session-less requests changed the default session's pin: %+v", s)
	}
}

// TestSessionlessRotationStaysCached: session-less requests rotate over
// four keys of one type (each serves 15–35%) while the policy's decision
// comes from the cache: the rotation is the gateway's own among the
// policy's equal-rank candidates (decision.rotate), not a fact in the
// input. The clock moves a second every 40 requests, so stored lastUsed
// times change as they do under real traffic.
func TestSessionlessRotationStaysCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	f.messages("claude-sonnet-5", nil) // the first decision is evaluated
	before := f.engine.Stats()
	served := map[string]int{}
	const n = 400
	for i := range n {
		if i%40 == 39 {
			f.clock.Advance(time.Second)
		}
		resp, body := f.messages("claude-sonnet-5", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, body)
		}
		served[resp.Header.Get("x-opensoul-profile")]++
	}
	for _, id := range []string{"anthropic:a", "anthropic:b", "anthropic:c", "anthropic:d"} {
		if c := served[id]; c < n*15/100 || c > n*35/100 {
			t.Errorf("%s served %d of %d requests (%v), want 15–35%%", id, c, n, served)
		}
	}
	st := f.engine.Stats()
	decisions, evals := st.Decisions-before.Decisions, st.Evaluations-before.Evaluations
	t.Logf("%d decisions, %d evaluated (hit rate %.1f%%), served %v", decisions, evals, 100*(1-float64(evals)/float64(decisions)), served)
	if decisions < n || evals > decisions/10 {
		t.Errorf("%d of %d decisions evaluated; a rotating request must not miss the decision cache", evals, decisions)
	}
}

// TestNewSessionsStartLeastRecentlyUsed: the first request of a new
// session is served by the least recently used of the policy's equal-rank
// keys: by the stored lastUsed on a fresh gateway (what `models status`
// shows as serving), then in turn; each session then sticks to its key.
func TestNewSessionsStartLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	now := f.clock.Now().UnixMilli()
	f.st.UpdateState("main", func(st *store.State) error {
		for i, id := range []string{"anthropic:a", "anthropic:b", "anthropic:d"} {
			st.UsageStats[id] = &store.UsageStats{LastUsed: now - int64(3-i)*60_000}
		}
		return nil // anthropic:c never used
	})
	want := []string{"anthropic:c", "anthropic:a", "anthropic:b", "anthropic:d"}
	for i, w := range want {
		h := map[string]string{"x-opensoul-session": fmt.Sprint("new-", i)}
		resp, body := f.messages("claude-sonnet-5", h)
		if got := resp.Header.Get("x-opensoul-profile"); resp.StatusCode != 200 || got != w {
			t.Fatalf("new session %d: served by %q (status %d), want %s: %s", i, got, resp.StatusCode, w, body)
		}
		if again, _ := f.messages("claude-sonnet-5", h); again.Header.Get("x-opensoul-profile") != w {
			t.Errorf("session new-%d moved from %s to %s", i, w, again.Header.Get("x-opensoul-profile"))
		}
	}
}

// TestBusySessionsStayCached: named sessions that keep sending (their
// request count doubling, their profiles' lastUsed moving) are decided
// twice each — a new session, then its auto pin — and then from the cache:
// the built-in policy reads neither, so neither is in its cache key.
func TestBusySessionsStayCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	f.messages("claude-sonnet-5", nil)
	before := f.engine.Stats()
	const sessions, each = 8, 40
	for i := range sessions * each {
		f.clock.Advance(300 * time.Millisecond)
		resp, body := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": fmt.Sprint("busy-", i%sessions)})
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
	st := f.engine.Stats()
	evals := st.Evaluations - before.Evaluations
	t.Logf("%d decisions, %d evaluated", st.Decisions-before.Decisions, evals)
	if evals > 2*sessions {
		t.Errorf("%d evaluations for %d sessions of %d requests, want at most 2 per session", evals, sessions, each)
	}
}

// TestClientSessionHeaders: Claude Code's and Codex's own session headers
// name the session (so each window sticks to its key), x-opensoul-session
// wins over them, and a configured list replaces the defaults.
func TestClientSessionHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	sticks := func(header map[string]string, session string) {
		t.Helper()
		first := ""
		for i := range 4 {
			resp, _ := f.messages("claude-sonnet-5", header)
			got := resp.Header.Get("x-opensoul-profile")
			if i == 0 {
				first = got
			} else if got != first {
				t.Errorf("%v: request %d served by %s, the session is pinned to %s", header, i, got, first)
			}
		}
		f.gw.Flush()
		if pin := f.sessions("main")[session].AuthProfileOverride; pin != first {
			t.Errorf("%v: session %q pinned to %q, want %q", header, session, pin, first)
		}
	}
	sticks(map[string]string{"x-claude-code-session-id": "cc-1"}, "cc-1")
	sticks(map[string]string{"Session-Id": "codex-1", "Thread-Id": "codex-1"}, "codex-1")
	sticks(map[string]string{"x-opensoul-session": "mine", "x-claude-code-session-id": "cc-2"}, "mine")
	if _, ok := f.sessions("main")["cc-2"]; ok {
		t.Error("x-opensoul-session must win over the client's header")
	}

	g := newFixture(t, withConfig(func(c *gateway.Config) { c.SessionHeaders = []string{} }))
	fourKeys(g)
	for range 4 {
		g.messages("claude-sonnet-5", map[string]string{"x-claude-code-session-id": "cc-1"})
	}
	g.gw.Flush()
	if _, ok := g.sessions("main")["cc-1"]; ok {
		t.Error("sessionHeaders: [] still reads x-claude-code-session-id")
	}
}

// TestSessionlessKeepsUserPin: /model …@profile in the default session
// still applies to requests that name no session.
func TestSessionlessKeepsUserPin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	f.st.UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["default"] = &store.Session{AuthProfileOverride: "anthropic:c", AuthProfileOverrideSource: store.PinUser}
		return nil
	})
	for i := range 6 {
		resp, _ := f.messages("claude-sonnet-5", nil)
		if got := resp.Header.Get("x-opensoul-profile"); got != "anthropic:c" {
			t.Fatalf("request %d served by %q, the user pinned anthropic:c", i, got)
		}
	}
}

func (f *fixture) sessions(agent string) map[string]store.Session {
	f.t.Helper()
	ss, err := f.st.LoadSessions(agent)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]store.Session{}
	for id, s := range ss.Sessions {
		out[id] = *s
	}
	return out
}
