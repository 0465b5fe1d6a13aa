// Package store keeps OpenSoul's per-agent state files: credential
// profiles (the only place secrets live), usage state and sessions.
//
// Every write takes an exclusive flock on <file>.lock, re-reads the file,
// applies the change and replaces the file atomically, so concurrent
// writers never lose each other's change and a crash leaves the old or the
// new file. A file that cannot be parsed is reported as *CorruptError and is
// never overwritten.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// DefaultAgent is the agent whose profiles every other agent inherits.
const DefaultAgent = "main"

// Store is the state directory. It holds no open files and no cache, so it
// is safe for concurrent use and cheap to copy.
type Store struct {
	Dir string
	// Sessions bound sessions.json on every write (zero: the defaults).
	Sessions SessionLimits
}

// New returns a Store rooted at dir (normally ~/.opensoul).
func New(dir string) *Store { return &Store{Dir: dir} }

var agentIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidAgentID reports whether id is usable as an agent directory name.
func ValidAgentID(id string) error {
	if !agentIDRe.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("invalid agent id %q: use letters, digits, '.', '_' or '-' (at most 64)", id)
	}
	return nil
}

// AgentDir is <state>/agents/<id>.
func (s *Store) AgentDir(agent string) string {
	return filepath.Join(s.Dir, "agents", agent)
}

// ProfilesPath is the agent's auth-profiles.json.
func (s *Store) ProfilesPath(agent string) string {
	return filepath.Join(s.AgentDir(agent), "agent", "auth-profiles.json")
}

// StatePath is the agent's auth-state.json.
func (s *Store) StatePath(agent string) string {
	return filepath.Join(s.AgentDir(agent), "agent", "auth-state.json")
}

// SessionsPath is the agent's sessions.json.
func (s *Store) SessionsPath(agent string) string {
	return filepath.Join(s.AgentDir(agent), "sessions.json")
}

// EnsureDir creates the state dir with mode 0700 and tightens it if it
// already exists with looser permissions.
func (s *Store) EnsureDir() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(s.Dir, 0o700)
}

// LoadProfiles reads the agent's own profiles (not inherited ones).
func (s *Store) LoadProfiles(agent string) (*Profiles, error) {
	p := newProfiles()
	if _, err := readJSON(s.ProfilesPath(agent), p); err != nil {
		return nil, err
	}
	p.normalize()
	return p, nil
}

// UpdateProfiles applies fn to the agent's own profiles under the lock.
func (s *Store) UpdateProfiles(agent string, fn func(*Profiles) error) error {
	return update(s.ProfilesPath(agent), newProfiles, func(p *Profiles) error {
		p.normalize()
		return fn(p)
	})
}

// LoadState reads the agent's usage state.
func (s *Store) LoadState(agent string) (*State, error) {
	st := newState()
	if _, err := readJSON(s.StatePath(agent), st); err != nil {
		return nil, err
	}
	st.normalize()
	return st, nil
}

// UpdateState applies fn to the agent's usage state under the lock.
func (s *Store) UpdateState(agent string, fn func(*State) error) error {
	_, err := s.UpdateStateStamped(agent, fn)
	return err
}

// UpdateStateStamped is UpdateState, returning what it wrote: a watcher
// whose copy of the file was read at w.Before (and who applied fn's
// changes to its copy itself) may take w.After as its own and skip
// reading the file again. Any other write, before or after, leaves a
// Stamp it has not seen.
func (s *Store) UpdateStateStamped(agent string, fn func(*State) error) (Written, error) {
	return updateStamped(s.StatePath(agent), newState, func(st *State) error {
		st.normalize()
		return fn(st)
	})
}

// LoadSessions reads the agent's sessions.
func (s *Store) LoadSessions(agent string) (*Sessions, error) {
	ss := newSessions()
	if _, err := readJSON(s.SessionsPath(agent), ss); err != nil {
		return nil, err
	}
	if ss.Sessions == nil {
		ss.Sessions = map[string]*Session{}
	}
	return ss, nil
}

// UpdateSessions applies fn to the agent's sessions under the lock, then
// the session limits: a change that puts an id or a model override over
// them is refused, and idle and surplus sessions are dropped.
func (s *Store) UpdateSessions(agent string, fn func(*Sessions) error) error {
	lim := s.Sessions.Effective()
	return update(s.SessionsPath(agent), newSessions, func(ss *Sessions) error {
		if ss.Sessions == nil {
			ss.Sessions = map[string]*Session{}
		}
		dropped := lim.dropOversized(ss) // written before the limits existed
		err := fn(ss)
		if err != nil && !errors.Is(err, errNoChange) {
			return err
		}
		if err := lim.check(ss); err != nil {
			return err
		}
		if lim.prune(ss, time.Now()) || dropped {
			return nil
		}
		return err
	})
}

func (p *Profiles) normalize() {
	if p.Version == 0 {
		p.Version = 1
	}
	if p.Profiles == nil {
		p.Profiles = map[string]Credential{}
	}
	if p.Order == nil {
		p.Order = map[string][]string{}
	}
}

func (st *State) normalize() {
	if st.Version == 0 {
		st.Version = 1
	}
	if st.LastGood == nil {
		st.LastGood = map[string]string{}
	}
	if st.UsageStats == nil {
		st.UsageStats = map[string]*UsageStats{}
	}
}

// Effective is an agent's view of credentials: main's profiles as the base,
// overridden per id by the agent's own, and per provider by its own order.
type Effective struct {
	Agent    string
	Profiles map[string]Credential
	Order    map[string][]string
	// Owner maps a profile id to the agent whose store holds it.
	Owner map[string]string
}

// LoadEffective merges main's store under the agent's own (DESIGN §2).
func (s *Store) LoadEffective(agent string) (*Effective, error) {
	own, err := s.LoadProfiles(agent)
	if err != nil {
		return nil, err
	}
	e := &Effective{Agent: agent, Profiles: map[string]Credential{}, Order: map[string][]string{}, Owner: map[string]string{}}
	if agent != DefaultAgent {
		base, err := s.LoadProfiles(DefaultAgent)
		if err != nil {
			return nil, err
		}
		for id, c := range base.Profiles {
			e.Profiles[id], e.Owner[id] = c, DefaultAgent
		}
		for prov, ids := range base.Order {
			e.Order[prov] = ids
		}
	}
	for id, c := range own.Profiles {
		e.Profiles[id], e.Owner[id] = c, agent
	}
	for prov, ids := range own.Order {
		e.Order[prov] = ids
	}
	return e, nil
}

// ProfileIDs returns the ids of the provider's profiles, sorted.
func (e *Effective) ProfileIDs(provider string) []string {
	return ProviderIDs(e.Profiles, provider)
}

// ProviderIDs returns the ids of the provider's profiles among profiles,
// sorted.
func ProviderIDs(profiles map[string]Credential, provider string) []string {
	var ids []string
	for id, c := range profiles {
		if c.Provider == provider {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Providers returns every provider that has a profile, sorted.
func (e *Effective) Providers() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range e.Profiles {
		if !seen[c.Provider] {
			seen[c.Provider] = true
			out = append(out, c.Provider)
		}
	}
	sort.Strings(out)
	return out
}
