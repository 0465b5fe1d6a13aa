package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestSeenForgetsRemovedProfiles: what the cache remembers of each
// credential (to see a secret change) is dropped when a reload finds the
// profile gone, so it does not grow with every profile ever added; it
// never holds the secret itself; and a profile removed while disabled
// until changed, then re-added with a new secret, is still lifted.
func TestSeenForgetsRemovedProfiles(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := store.New(t.TempDir())
	key := func(i int) string { return fmt.Sprintf("sk-seen-secret-%03d", i) }
	update := func(f func(p *store.Profiles)) {
		t.Helper()
		if err := st.UpdateProfiles("x", func(p *store.Profiles) error { f(p); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	update(func(p *store.Profiles) {
		for i := range 200 {
			p.Profiles[fmt.Sprintf("anthropic:p%03d", i)] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: key(i)}
		}
	})
	l := newLive(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now }, func() Cooldowns { return Cooldowns{} })
	reload := func() *Snapshot {
		t.Helper()
		l.markStale()
		l.poll()
		a, err := l.agent("x")
		if err != nil {
			t.Fatal(err)
		}
		return a.snap.Load()
	}
	reload()
	if n := len(l.seen); n != 200 {
		t.Fatalf("seen %d credentials after loading 200", n)
	}
	if s := fmt.Sprintf("%v", l.seen); strings.Contains(s, "sk-seen-secret") {
		t.Fatal("seen holds a secret")
	}

	// p000 is disabled until changed; then all but p199 are removed.
	l.record("x", stateOp{profile: "anthropic:p000", reason: ReasonAuth, at: now})
	l.flush()
	if u := reload().Stats.Get("anthropic:p000"); u.DisabledUntil < DisabledUntilChanged {
		t.Fatalf("p000 not disabled: %+v", u)
	}
	update(func(p *store.Profiles) {
		for i := range 199 {
			delete(p.Profiles, fmt.Sprintf("anthropic:p%03d", i))
		}
	})
	reload()
	if _, ok := l.seen["x/anthropic:p000"]; len(l.seen) != 2 || !ok {
		t.Fatalf("seen after removing 199 of 200 profiles: %d entries (want p199 and the disabled p000)", len(l.seen))
	}

	// Re-added with a new secret: lifted, as if replaced in place.
	update(func(p *store.Profiles) {
		p.Profiles["anthropic:p000"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-seen-new"}
	})
	if u := reload().Stats.Get("anthropic:p000"); u.DisabledUntil != 0 {
		t.Errorf("re-added with a new secret, still disabled: %+v", u)
	}
	update(func(p *store.Profiles) { delete(p.Profiles, "anthropic:p000") })
	reload()
	if len(l.seen) != 1 {
		t.Errorf("seen after removing the lifted profile: %d entries, want 1", len(l.seen))
	}
}
