package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/doctor"
	"github.com/opensoul/opensoul/gateway/store"
)

// TestDoctorFixExpiredSessionsAndStaleCooldowns runs doctor --fix on a
// copy of a broken state: a session idle past gateway.sessions.idleDays
// (10 here, so the config is what counts), a user pin to a removed
// profile in the same file, and a cooldown recorded for a secret the
// profile no longer has beside one recorded for its current secret. The
// dry run changes nothing; --yes leaves each file exactly as the last
// diff shown for it says, with one backup of its old content; no
// credential changes.
func TestDoctorFixExpiredSessionsAndStaleCooldowns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile("opensoul.yaml", "gateway:\n  sessions:\n    idleDays: 10\n")
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:a")
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:b", "--no-order")
	st := store.New(e.state)
	now := time.Now()
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	day := 24 * time.Hour

	// Written as it was before the limits applied (UpdateSessions would
	// already drop the idle session).
	sessions := st.SessionsPath("main")
	raw, _ := json.Marshal(store.Sessions{Version: 1, Sessions: map[string]*store.Session{
		"idle":   {AuthProfileOverride: "anthropic:a", AuthProfileOverrideSource: store.PinAuto, CreatedAt: ago(30 * day), UpdatedAt: ago(20 * day)},
		"recent": {AuthProfileOverride: "anthropic:a", AuthProfileOverrideSource: store.PinAuto, CreatedAt: ago(3 * day), UpdatedAt: ago(day)},
		"stuck":  {AuthProfileOverride: "anthropic:gone", AuthProfileOverrideSource: store.PinUser, UpdatedAt: ago(day)},
	}})
	if err := os.WriteFile(sessions, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	old := store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-ant-api03-the-key-it-had-before-0123456789"}
	cur, _ := st.LoadProfiles("main")
	if err := st.UpdateState("main", func(s *store.State) error {
		s.UsageStats["anthropic:a"] = &store.UsageStats{LastUsed: ago(time.Hour), CooldownUntil: now.Add(time.Hour).UnixMilli(), CooldownModel: "claude-sonnet-5",
			ErrorCount: 1, FailureCounts: map[string]int{"rate_limit": 1}, LastFailureAt: ago(time.Minute), SecretTag: old.Tag()}
		s.UsageStats["anthropic:b"] = &store.UsageStats{LastUsed: ago(time.Hour), CooldownUntil: now.Add(time.Hour).UnixMilli(),
			ErrorCount: 1, FailureCounts: map[string]int{"rate_limit": 1}, LastFailureAt: ago(time.Minute), SecretTag: cur.Profiles["anthropic:b"].Tag()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	profiles, state := st.ProfilesPath("main"), st.StatePath("main")
	files := []string{profiles, sessions, state}
	read := func() map[string]string {
		out := map[string]string{}
		for _, p := range files {
			data, _ := os.ReadFile(p)
			out[p] = string(data)
		}
		return out
	}
	before := read()
	warned := func() (sessions, cooldowns string) {
		t.Helper()
		out, _, _ := e.run("", "doctor", "--json")
		var doc struct{ Checks []doctor.Check }
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("doctor --json: %v\n%s", err, out)
		}
		for _, c := range doc.Checks {
			if c.Status == "warn" && c.Fix == "opensoul doctor --fix" {
				switch c.Name {
				case "sessions":
					sessions += c.Detail
				case "cooldowns":
					cooldowns += c.Detail
				}
			}
		}
		return sessions, cooldowns
	}
	if s, c := warned(); !strings.Contains(s, "drop 1 expired session") || !strings.Contains(c, "anthropic:a") || strings.Contains(c, "anthropic:b") {
		t.Errorf("doctor warns: sessions %q, cooldowns %q", s, c)
	}

	dry := e.ok("", "doctor", "--fix")
	for _, want := range []string{
		"drop 1 expired session(s) of agent main (unused for 10 days", `-    "idle": {`,
		`-      "authProfileOverride": "anthropic:gone"`,
		"lift cooldowns recorded for a replaced secret: anthropic:a (agent main)", `-      "cooldownUntil"`,
		"Dry run: nothing changed",
	} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if strings.Contains(dry, "anthropic:b (agent") || strings.Contains(dry, fixAnthropicKey) || strings.Contains(dry, fixSetupToken) {
		t.Errorf("dry run lifts the current secret's cooldown or shows a secret:\n%s", dry)
	}
	if after := read(); !reflectEqual(before, after) {
		t.Fatal("the dry run changed files")
	}
	shown := afterSides(dry)

	e.ok("", "doctor", "--fix", "--yes")
	ss, _ := st.LoadSessions("main")
	s, _ := st.LoadState("main")
	for path, v := range map[string]any{sessions: ss, state: s} {
		got, _ := json.MarshalIndent(v, "", "  ")
		if want, ok := shown[path]; !ok || string(got)+"\n" != want {
			t.Errorf("%s after --yes is not what the dry run showed:\ngot:\n%s\nshown:\n%s", path, got, want)
		}
	}
	if ss.Sessions["idle"] != nil || ss.Sessions["recent"] == nil || ss.Sessions["stuck"] == nil || ss.Sessions["stuck"].AuthProfileOverride != "" {
		t.Errorf("sessions after --fix: %v", ss.Sessions)
	}
	if a, b := s.UsageStats["anthropic:a"], s.UsageStats["anthropic:b"]; a == nil || doctor.HasSomethingToClear(*a) || a.LastUsed != ago(time.Hour) || a.SecretTag != "" || b == nil || b.CooldownUntil == 0 {
		t.Errorf("stats after --fix: a %+v, b %+v (want a reset but for lastUsed, b kept)", a, b)
	}
	if data, _ := os.ReadFile(profiles); string(data) != before[profiles] {
		t.Error("doctor --fix changed the profiles")
	}
	for _, path := range []string{sessions, state} {
		matches, _ := filepath.Glob(path + ".bak-*")
		if len(matches) != 1 {
			t.Errorf("want one backup of %s, got %v", path, matches)
			continue
		}
		if data, _ := os.ReadFile(matches[0]); string(data) != before[path] {
			t.Errorf("backup %s is not the old content", matches[0])
		}
	}
	if out := e.ok("", "doctor", "--fix"); !strings.Contains(out, "nothing to repair") {
		t.Errorf("after --yes, more to repair:\n%s", out)
	}
	if s, c := warned(); s != "" || c != "" {
		t.Errorf("after --yes doctor still warns: sessions %q, cooldowns %q", s, c)
	}
}

// afterSides reads doctor --fix output and returns, per file, the text
// after the last diff shown for it (its " " and "+" lines).
func afterSides(out string) map[string]string {
	sides := map[string]string{}
	var path string
	var b strings.Builder
	in := false
	flush := func() {
		if in {
			sides[path] = b.String()
		}
		in = false
		b.Reset()
	}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "--- ") && !in:
			path = strings.TrimPrefix(line, "--- ")
		case strings.HasPrefix(line, "+++ ") && !in && path != "":
			in = true
		case in && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "+")):
			b.WriteString(line[1:] + "\n")
		case in && strings.HasPrefix(line, "-"):
		default:
			flush()
			path = ""
		}
	}
	flush()
	return sides
}
