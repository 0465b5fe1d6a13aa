package gateway

import (
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// ExpiringWithin is how close to expiry a token counts as "expiring".
const ExpiringWithin = 24 * time.Hour

// Profile statuses shown by `models status` and given to policies.
const (
	StatusOK       = "ok"       // a token or OAuth login with time left
	StatusStatic   = "static"   // an API key, or a token without expiry
	StatusExpiring = "expiring" // expires within ExpiringWithin
	StatusExpired  = "expired"
	StatusMissing  = "missing" // the profile holds no secret
	StatusInvalid  = "invalid" // the provider module rejected the secret
)

// Snapshot is one agent's view of its credentials and what the gateway has
// learned about them, read from the store at one moment.
type Snapshot struct {
	Agent    string
	Profiles map[string]store.Credential
	Owner    map[string]string   // profile id → agent whose store holds it
	Order    map[string][]string // the agent's effective store order
	Stats    StatsMap            // see StatsMap: read with Get, Lookup, All
	LastGood map[string]string   // provider → profile id, for this agent
	// Recent are the provider/model refs this agent asked for lately
	// (epoch ms of the last noted request; store.State.RecentModels).
	Recent map[string]int64
	Paths  []string // the files this snapshot was read from

	// facts caches the policy's profile facts per provider for this
	// snapshot (nil: not cached). A snapshot is never modified once in
	// use, so they stay true until a status changes with the clock.
	facts *factsMemo
	// scrub caches the secret sets of answers (see secretsFor). Unlike
	// facts it is kept by copies that change only usage state.
	scrub *scrubMemo
}

// LoadSnapshot reads an agent's effective profiles (main's as the base) and
// the usage state of each profile from the store of the agent that owns it.
func LoadSnapshot(s *store.Store, agent string) (*Snapshot, error) {
	eff, err := s.LoadEffective(agent)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{
		Agent:    agent,
		Profiles: eff.Profiles,
		Owner:    eff.Owner,
		Order:    eff.Order,
		LastGood: map[string]string{},
		Paths:    []string{s.ProfilesPath(agent), s.StatePath(agent)},
		facts:    &factsMemo{},
		scrub:    &scrubMemo{},
	}
	states := map[string]*store.State{}
	stateOf := func(a string) (*store.State, error) {
		if st, ok := states[a]; ok {
			return st, nil
		}
		st, err := s.LoadState(a)
		if err != nil {
			return nil, err
		}
		states[a] = st
		return st, nil
	}
	own, err := stateOf(agent)
	if err != nil {
		return nil, err
	}
	snap.LastGood = own.LastGood
	snap.Recent = own.RecentModels
	if agent != store.DefaultAgent {
		snap.Paths = append(snap.Paths, s.ProfilesPath(store.DefaultAgent), s.StatePath(store.DefaultAgent))
	}
	stats := map[string]store.UsageStats{}
	for id, owner := range eff.Owner {
		st, err := stateOf(owner)
		if err != nil {
			return nil, err
		}
		if u := st.UsageStats[id]; u != nil {
			stats[id] = *u
		}
	}
	snap.Stats = NewStatsMap(stats)
	return snap, nil
}

// ProfileStatus is a credential's status from its shape and expiry alone.
// A provider module's verdict (StatusInvalid) is layered on by callers.
// An OAuth login OpenSoul can refresh is ok whatever its access token's
// expiry: the gateway refreshes it before use (see Refresher). Once a
// refresh has been refused it is expired until the user signs in again.
func ProfileStatus(c store.Credential, now time.Time) string {
	if c.Type == store.TypeOAuth && c.RefreshError != "" {
		return StatusExpired
	}
	if c.Secret() == "" {
		return StatusMissing
	}
	if c.Refreshable() {
		return StatusOK
	}
	if c.Type == store.TypeAPIKey || c.Expires == 0 {
		return StatusStatic
	}
	left := time.UnixMilli(c.Expires).Sub(now)
	switch {
	case left <= 0:
		return StatusExpired
	case left <= ExpiringWithin:
		return StatusExpiring
	}
	return StatusOK
}

// ProfileIDs returns the ids of the provider's profiles, sorted.
func (s *Snapshot) ProfileIDs(provider string) []string {
	return store.ProviderIDs(s.Profiles, provider)
}
