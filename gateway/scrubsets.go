package gateway

import (
	"sync"

	"github.com/opensoul/opensoul/gateway/scrub"
)

// secretsFor collects what the gateway could leak in rs's answer: every
// stored credential the agent sees, the environment and config keys of
// the provider, and the gateway tokens. The set is built once per
// snapshot of the agent's profiles (kept while only usage state changes),
// environment, config and provider, not once per answer.
func (s *Server) secretsFor(rs *reqState) *scrub.Set {
	envp := s.env.Load()
	if rs.al == nil {
		return s.buildSecrets(rs, nil, envp)
	}
	snap := rs.al.snap.Load()
	key := scrubKey{env: envp, rc: rs.rc, provider: rs.provider}
	if ss := snap.scrub.get(key); ss != nil {
		return ss
	}
	ss := s.buildSecrets(rs, snap, envp)
	snap.scrub.put(key, ss)
	return ss
}

func (s *Server) buildSecrets(rs *reqState, snap *Snapshot, envp *Env) *scrub.Set {
	ss := &scrub.Set{}
	if snap != nil {
		for _, c := range snap.Profiles {
			ss.Add(c.Secret())
			ss.Add(c.Refresh)
		}
	}
	env := *envp
	for _, c := range envVarsOf(rs.provider) {
		ss.Add(env[c.Var].Value)
	}
	for _, up := range rs.rc.Providers {
		ss.Add(up.APIKey)
	}
	ss.Add(rs.rc.Token)
	for _, tok := range rs.rc.AgentTokens {
		ss.Add(tok)
	}
	return ss.Done()
}

// scrubMemo keeps a snapshot's secret sets. Snapshots that differ only in
// usage state share it (they share the profiles).
type scrubMemo struct {
	mu sync.Mutex
	m  map[scrubKey]*scrub.Set
}

type scrubKey struct {
	env      *Env
	rc       *runtimeConfig
	provider string
}

func (m *scrubMemo) get(k scrubKey) *scrub.Set {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k]
}

func (m *scrubMemo) put(k scrubKey, ss *scrub.Set) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= 64 {
		m.m = map[scrubKey]*scrub.Set{} // configs and environments replaced many times
	}
	m.m[k] = ss
}
