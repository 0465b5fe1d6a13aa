package gateway

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestJournalCloseWritesWhatWasLearned: the journal's Close stops its
// goroutine and waits for a last flush, so a cooldown learned just before
// shutdown is on disk when Close returns; a second Close is harmless; and
// a reload that ran during a write makes every agent reload once more (it
// may have counted the write's ops twice).
func TestJournalCloseWritesWhatWasLearned(t *testing.T) {
	t.Parallel()
	st := store.New(t.TempDir())
	t0 := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	l := newLive(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return t0 }, func() Cooldowns { return Cooldowns{} })
	l.start(time.Hour) // no tick during the test: only Close writes
	l.record("main", stateOp{profile: "anthropic:a", reason: ReasonRateLimit, retryAfter: time.Hour, at: t0})
	l.Close()
	l.Close()
	s, err := st.LoadState("main")
	if err != nil {
		t.Fatal(err)
	}
	u := s.UsageStats["anthropic:a"]
	if u == nil || u.CooldownUntil != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("after Close: stats %+v, want a cooldown until %d", u, t0.Add(time.Hour).UnixMilli())
	}
	l.agentCache.mu.Lock()
	stale := l.stale
	l.agentCache.mu.Unlock()
	if stale {
		t.Error("a write no reload overlapped marked the agents stale")
	}
	token := l.loads.Load()
	if _, err := l.agent("main"); err != nil { // a load during the write
		t.Fatal(err)
	}
	l.agentCache.written(token, nil)
	l.agentCache.mu.Lock()
	stale = l.stale
	l.agentCache.mu.Unlock()
	if !stale {
		t.Error("a reload during the write did not mark the agents stale")
	}
}

// TestErrorOnce: the same error under a key is reported once, a new one
// or one after Clear again, and keys are independent.
func TestErrorOnce(t *testing.T) {
	var e ErrorOnce
	a, b := errors.New("a"), errors.New("b")
	steps := []struct {
		key   string
		err   error
		clear bool
		want  bool
	}{
		{"x", a, false, true}, {"x", a, false, false}, {"y", a, false, true},
		{"x", b, false, true}, {"x", a, false, true}, {"x", nil, true, false}, {"x", a, false, true},
	}
	for i, s := range steps {
		if s.clear {
			e.Clear(s.key)
			continue
		}
		if got := e.Changed(s.key, s.err); got != s.want {
			t.Fatalf("step %d: Changed(%q, %v) = %v, want %v", i, s.key, s.err, got, s.want)
		}
	}
}
