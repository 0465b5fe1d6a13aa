package gateway

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// An auto pin learned just before a /new (or `sessions reset`, or /model
// default) but written just after it must not bring the old session back.
func TestQueuedAutoPinDoesNotUndoAReset(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_800_000_000_000)
	cases := []struct {
		name  string
		after func(ss *store.Sessions) // what happens between learning and writing
		want  string                   // the session's auto pin after the flush
	}{
		{"nothing", func(*store.Sessions) {}, "anthropic:a"},
		{"reset after", func(ss *store.Sessions) { ss.Reset("s1", t0.UnixMilli()+5) }, ""},
		{"reset before", func(ss *store.Sessions) { ss.Reset("s1", t0.UnixMilli()-5) }, "anthropic:a"},
		{"model default after", func(ss *store.Sessions) {
			ss.Sessions["s1"] = &store.Session{UpdatedAt: t0.UnixMilli() + 5}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := store.New(t.TempDir())
			l := newLive(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return t0 }, func() Cooldowns { return Cooldowns{} })
			l.sessOps["main"] = []sessionOp{{session: "s1", profile: "anthropic:a", at: t0}}
			if err := st.UpdateSessions("main", func(ss *store.Sessions) error { tc.after(ss); return nil }); err != nil {
				t.Fatal(err)
			}
			l.flush()
			ss, err := st.LoadSessions("main")
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if s := ss.Sessions["s1"]; s != nil {
				got = s.AuthProfileOverride
			}
			if got != tc.want {
				t.Errorf("auto pin after flush = %q, want %q", got, tc.want)
			}
		})
	}
}
