package doctor

import (
	"slices"
	"testing"

	"github.com/opensoul/opensoul/gateway/store"
)

// lineDiff is what --fix shows; applying its "-"/"+" lines to the old
// text must give the new one, and kept lines must be the common ones.
func TestLineDiff(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, a, b, want string
	}{
		{"same", "x\ny\n", "x\ny\n", " x\n y\n"},
		{"changed middle", "a\nb\nc\n", "a\nB\nc\n", " a\n-b\n+B\n c\n"},
		{"appended", "a\n", "a\nb\n", " a\n+b\n"},
		{"removed", "a\nb\n", "b\n", "-a\n b\n"},
		{"from empty", "", "a\n", "+a\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := lineDiff(tc.a, tc.b); got != tc.want {
				t.Errorf("lineDiff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// liftStaleCooldowns clears only what was recorded for another secret
// than the profile's (keeping lastUsed), never a failure of the current
// secret, one recorded without a tag, or an OAuth login's.
func TestLiftStaleCooldowns(t *testing.T) {
	t.Parallel()
	now := store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-ant-api03-FIXTUREnew"}
	old := store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-ant-api03-FIXTUREold"}
	login := store.Credential{Type: store.TypeOAuth, Provider: "openai", Access: "FIXTUREaccess"}
	p := &store.Profiles{Profiles: map[string]store.Credential{
		"anthropic:replaced": now, "anthropic:same": now, "anthropic:untagged": now, "anthropic:idle": now, "openai:login": login,
	}}
	cooling := func(tag string) *store.UsageStats {
		return &store.UsageStats{LastUsed: 7, CooldownUntil: 99, ErrorCount: 2, SecretTag: tag}
	}
	st := &store.State{UsageStats: map[string]*store.UsageStats{
		"anthropic:replaced": cooling(old.Tag()),
		"anthropic:same":     cooling(now.Tag()),
		"anthropic:untagged": cooling(""),
		"anthropic:idle":     {LastUsed: 7, SecretTag: old.Tag()},
		"openai:login":       cooling(old.Tag()),
		"anthropic:gone":     cooling(old.Tag()),
	}}
	ids := liftStaleCooldowns(st, p)
	if !slices.Equal(ids, []string{"anthropic:replaced"}) {
		t.Fatalf("lifted %v, want [anthropic:replaced]", ids)
	}
	if u := *st.UsageStats["anthropic:replaced"]; HasSomethingToClear(u) || u.LastUsed != 7 || u.SecretTag != "" {
		t.Errorf("replaced: %+v, want only lastUsed kept", u)
	}
	for _, id := range []string{"anthropic:same", "anthropic:untagged", "openai:login", "anthropic:gone"} {
		if !HasSomethingToClear(*st.UsageStats[id]) {
			t.Errorf("%s lost its cooldown", id)
		}
	}
}
