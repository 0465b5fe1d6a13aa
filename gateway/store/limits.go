package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// SessionLimits bound sessions.json, whoever writes it (the gateway's
// pins, chat commands, the CLI): callers choose session ids and model
// names, so without bounds the file, and every rewrite of it, grows with
// what they send. The zero value is the defaults.
type SessionLimits struct {
	MaxPerAgent   int           // sessions kept per agent, least recently used dropped first; 0: 1000
	Idle          time.Duration // a session unused this long is dropped; 0: 28 days
	MaxIDBytes    int           // longest session id; 0: 256
	MaxModelBytes int           // longest model override; 0: 256
}

// Effective fills in the defaults.
func (l SessionLimits) Effective() SessionLimits {
	return SessionLimits{
		MaxPerAgent:   cmp.Or(max(l.MaxPerAgent, 0), 1000),
		Idle:          cmp.Or(max(l.Idle, 0), 28*24*time.Hour),
		MaxIDBytes:    cmp.Or(max(l.MaxIDBytes, 0), 256),
		MaxModelBytes: cmp.Or(max(l.MaxModelBytes, 0), 256),
	}
}

// dropOversized drops sessions over the id or model limits.
func (l SessionLimits) dropOversized(ss *Sessions) bool {
	dropped := false
	for id, s := range ss.Sessions {
		if len(id) > l.MaxIDBytes || (s != nil && len(s.ModelOverride) > l.MaxModelBytes) {
			delete(ss.Sessions, id)
			dropped = true
		}
	}
	return dropped
}

// check refuses a session whose id or model override is over the limits.
func (l SessionLimits) check(ss *Sessions) error {
	for id, s := range ss.Sessions {
		if len(id) > l.MaxIDBytes {
			return fmt.Errorf("session id of %d bytes: at most %d (gateway.sessions.maxIdBytes)", len(id), l.MaxIDBytes)
		}
		if s != nil && len(s.ModelOverride) > l.MaxModelBytes {
			return fmt.Errorf("model override of %d bytes: at most %d (gateway.sessions.maxModelBytes)", len(s.ModelOverride), l.MaxModelBytes)
		}
	}
	return nil
}

// prune drops sessions idle since before now-Idle, then the least
// recently used beyond MaxPerAgent. It reports whether it dropped any.
func (l SessionLimits) prune(ss *Sessions, now time.Time) bool {
	cutoff := now.Add(-l.Idle).UnixMilli()
	dropped := false
	for id, s := range ss.Sessions {
		// A session without times (hand-written) has no age to expire by;
		// the cap still counts it, as the oldest.
		if s == nil || (max(s.UpdatedAt, s.CreatedAt) > 0 && max(s.UpdatedAt, s.CreatedAt) < cutoff) {
			delete(ss.Sessions, id)
			dropped = true
		}
	}
	if len(ss.Sessions) <= l.MaxPerAgent {
		return dropped
	}
	ids := make([]string, 0, len(ss.Sessions))
	for id := range ss.Sessions {
		ids = append(ids, id)
	}
	used := func(id string) int64 { s := ss.Sessions[id]; return max(s.UpdatedAt, s.CreatedAt) }
	slices.SortFunc(ids, func(a, b string) int { return cmp.Or(cmp.Compare(used(a), used(b)), cmp.Compare(a, b)) })
	for _, id := range ids[:len(ids)-l.MaxPerAgent] {
		delete(ss.Sessions, id)
	}
	return true
}

// Tidy applies the limits to ss as every write of sessions.json does
// (UpdateSessions): it drops sessions over the id or model limits, those
// idle past Idle at now, and the least recently used beyond MaxPerAgent,
// and reports whether it dropped any. doctor --fix shows what it drops.
func (l SessionLimits) Tidy(ss *Sessions, now time.Time) bool {
	e := l.Effective()
	oversized := e.dropOversized(ss)
	return e.prune(ss, now) || oversized
}
