package gateway

import (
	"cmp"
	"strings"

	"github.com/opensoul/opensoul/gateway/store"
)

// CredentialOwner says whose credential an agent used under a profile
// id, as the profile files say now: the agent's own profile, else the
// main one it inherits, and "" for a key from the environment or the
// config (ids env:… and config:…, see Resolver.Fallback). An id in
// neither file (a profile removed since) is taken as the agent's own.
//
// It is usage.Options.Owner for a usage store written before its rows
// named the credential's owner: an old row's agent and profile id are
// all it has, and the files are the best witness left of which
// credential served. Each agent's files are read once per call of
// CredentialOwner.
func CredentialOwner(st *store.Store) func(agent, profile string) string {
	effective := map[string]*store.Effective{}
	return func(agent, profile string) string {
		if strings.HasPrefix(profile, "env:") || strings.HasPrefix(profile, "config:") {
			return ""
		}
		a := cmp.Or(agent, store.DefaultAgent)
		e, read := effective[a]
		if !read {
			e, _ = st.LoadEffective(a) // unreadable files: the agent's own, below
			effective[a] = e
		}
		if e != nil {
			if owner, ok := e.Owner[profile]; ok {
				return owner
			}
		}
		return agent
	}
}
