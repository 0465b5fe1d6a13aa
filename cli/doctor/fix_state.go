package doctor

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// expiredSessionsRepair drops the agent's sessions that any write of
// sessions.json would drop (gateway.sessions): idle past idleDays, over
// the id or model limits, or beyond maxPerAgent, least recently used
// first. Until something writes the file they stay in it, and in every
// command that reads it.
func (s *Setup) expiredSessionsRepair(agent string, now time.Time) ([]repair, error) {
	ss, err := s.Store.LoadSessions(agent)
	if err != nil {
		return nil, err
	}
	before, _ := json.MarshalIndent(ss, "", "  ")
	n := len(ss.Sessions)
	if !s.Store.Sessions.Tidy(ss, now) {
		return nil, nil
	}
	after, _ := json.MarshalIndent(ss, "", "  ")
	lim := s.Store.Sessions.Effective()
	what := fmt.Sprintf("drop %d expired session(s) of agent %s (unused for %s, or over the gateway.sessions limits)",
		n-len(ss.Sessions), agent, days(lim.Idle))
	return []repair{{What: what, Path: s.Store.SessionsPath(agent), Diff: lineDiff(string(before), string(after)),
		apply: func() error {
			// The store applies the limits on every write.
			return s.Store.UpdateSessions(agent, func(*store.Sessions) error { return store.NoChange })
		}}}, nil
}

func days(d time.Duration) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", d.Hours()/24), ".0") + " days"
}

// staleCooldownRepairs lift the cooldowns and disables recorded for a
// secret the profile no longer has: the gateway records the secret's tag
// (store.Credential.Tag) with each failure, and a profile whose secret was
// replaced by hand, or while a running gateway still wrote what it had
// learned about the old one, keeps them otherwise. Like pasting a new
// secret, the repair keeps only lastUsed. Failures recorded without a tag
// (before tags existed, or OAuth logins) are left alone.
func (s *Setup) staleCooldownRepairs(agent string) ([]repair, error) {
	var out []repair
	for _, owner := range slices.Compact([]string{store.DefaultAgent, agent}) {
		r, err := s.staleCooldownRepair(owner)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

func (s *Setup) staleCooldownRepair(owner string) ([]repair, error) {
	p, err := s.Store.LoadProfiles(owner)
	if err != nil {
		return nil, err
	}
	st, err := s.Store.LoadState(owner)
	if err != nil {
		return nil, err
	}
	before, _ := json.MarshalIndent(st, "", "  ")
	ids := liftStaleCooldowns(st, p)
	if len(ids) == 0 {
		return nil, nil
	}
	after, _ := json.MarshalIndent(st, "", "  ")
	what := fmt.Sprintf("lift cooldowns recorded for a replaced secret: %s (agent %s)", strings.Join(ids, ", "), owner)
	return []repair{{What: what, Path: s.Store.StatePath(owner), Diff: lineDiff(string(before), string(after)),
		apply: func() error {
			p, err := s.Store.LoadProfiles(owner)
			if err != nil {
				return err
			}
			return s.Store.UpdateState(owner, func(st *store.State) error {
				if len(liftStaleCooldowns(st, p)) == 0 {
					return store.NoChange
				}
				return nil
			})
		}}}, nil
}

// liftStaleCooldowns resets, in st, the stats of the profiles of p whose
// failures were recorded for another secret, and returns their ids.
func liftStaleCooldowns(st *store.State, p *store.Profiles) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(st.UsageStats)) {
		u := st.UsageStats[id]
		c, ok := p.Profiles[id]
		if u == nil || !ok || u.SecretTag == "" || c.Tag() == "" || c.Tag() == u.SecretTag || !HasSomethingToClear(*u) {
			continue
		}
		st.UsageStats[id] = &store.UsageStats{LastUsed: u.LastUsed}
		ids = append(ids, id)
	}
	return ids
}

// staleStateChecks warns about what expiredSessionsRepair and
// staleCooldownRepairs would change, so that doctor without --fix says
// so: expired sessions still in sessions.json, and cooldowns recorded for
// a secret the profile no longer has.
func (s *Setup) staleStateChecks(agent string, add func(name, status, detail, fix string)) {
	if r, err := s.expiredSessionsRepair(agent, time.Now()); err == nil && len(r) > 0 {
		add("sessions", "warn", r[0].What+" in "+r[0].Path, "opensoul doctor --fix"+agentSuffix(agent))
	}
	if rs, err := s.staleCooldownRepairs(agent); err == nil {
		for _, r := range rs {
			add("cooldowns", "warn", r.What+": they were about the old secret", "opensoul doctor --fix"+agentSuffix(agent))
		}
	}
}

// HasSomethingToClear: a cooldown, disable, error count or failure record.
func HasSomethingToClear(u store.UsageStats) bool {
	return u.CooldownUntil != 0 || u.DisabledUntil != 0 || u.ErrorCount != 0 || len(u.FailureCounts) != 0 || u.LastFailureAt != 0 || u.CooldownModel != "" || u.DisabledReason != "" || u.Scope != ""
}
