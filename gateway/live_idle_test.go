package gateway

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestIdleAgentsAreUnloaded: poll unloads an agent no request asked for
// in agentIdle, keeps the others, and an unloaded agent comes back with
// everything learned, written or not.
func TestIdleAgentsAreUnloaded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	st := store.New(t.TempDir())
	if err := st.UpdateProfiles("x", func(p *store.Profiles) error {
		p.Profiles["anthropic:x"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-x"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l := newLive(st, slog.New(slog.NewTextHandler(io.Discard, nil)), clock, func() Cooldowns { return Cooldowns{} })
	loaded := func(id string) bool { return l.agentCache.loaded(id) != nil }
	cooldown := func() int64 {
		a, err := l.agent("x")
		if err != nil {
			t.Fatal(err)
		}
		return a.snap.Load().Stats.Get("anthropic:x").CooldownUntil
	}

	for _, id := range []string{"x", "busy"} {
		if _, err := l.agent(id); err != nil {
			t.Fatal(err)
		}
	}
	// Learned, not yet written.
	l.record("x", stateOp{profile: "anthropic:x", reason: ReasonRateLimit, retryAfter: time.Hour, at: clock()})
	want := cooldown()
	if want == 0 {
		t.Fatal("the rate limit did not cool the profile")
	}

	advance(agentIdle - time.Minute)
	l.agent("busy")
	advance(2 * time.Minute)
	l.poll()
	if loaded("x") || !loaded("busy") {
		t.Fatalf("after %v idle: x loaded %v, busy loaded %v; want only busy", agentIdle+time.Minute, loaded("x"), loaded("busy"))
	}
	if got := cooldown(); got != want {
		t.Fatalf("reloaded before the write: cooldown %d, want %d", got, want)
	}

	l.flush()
	advance(agentIdle + time.Minute)
	l.poll()
	if loaded("x") {
		t.Fatal("x still loaded")
	}
	if got := cooldown(); got != want {
		t.Fatalf("reloaded after the write: cooldown %d, want %d", got, want)
	}
}
