package store

// Credential types.
const (
	TypeAPIKey = "api_key"
	TypeToken  = "token"
	TypeOAuth  = "oauth"
)

// Credential is one stored secret with its metadata (DESIGN §2).
// The secret is in Key (api_key), Token (token) or Access/Refresh (oauth).
type Credential struct {
	Type     string `json:"type"`
	Provider string `json:"provider"`
	Key      string `json:"key,omitempty"`
	Token    string `json:"token,omitempty"`
	Access   string `json:"access,omitempty"`
	Refresh  string `json:"refresh,omitempty"`
	Expires  int64  `json:"expires,omitempty"` // epoch ms; 0 means none
	Email    string `json:"email,omitempty"`
	Label    string `json:"label,omitempty"`
	// AccountID is the provider's account id of an OAuth login (for
	// example the ChatGPT account a Codex sign-in belongs to).
	AccountID string `json:"accountId,omitempty"`
	// RefreshError is set when refreshing an OAuth login failed for good:
	// the provider's answer and the command that fixes it (no secret). A
	// new login clears it.
	RefreshError string `json:"refreshError,omitempty"`
	// External, when set, says the login belongs to a provider's own CLI
	// (opensoul models auth import): OpenSoul follows its credential file.
	External *External `json:"external,omitempty"`
}

// External is the source of an externally managed login.
type External struct {
	Source string `json:"source"` // codex | claude
	Path   string `json:"path"`   // the CLI's credential file
	// WriteBack lets OpenSoul refresh the login itself and write the new
	// tokens into Path. Without it only the CLI refreshes; OpenSoul
	// re-reads the file and never spends the refresh token.
	WriteBack bool `json:"writeBack,omitempty"`
}

// Refreshable reports whether c is an OAuth login OpenSoul can still
// refresh: it holds a refresh token that has not been refused, and it is
// not a provider CLI's login that OpenSoul may only read.
func (c Credential) Refreshable() bool {
	return c.Type == TypeOAuth && c.Refresh != "" && c.RefreshError == "" && (c.External == nil || c.External.WriteBack)
}

// Secret is the value presented upstream for this credential.
func (c Credential) Secret() string {
	switch c.Type {
	case TypeAPIKey:
		return c.Key
	case TypeToken:
		return c.Token
	case TypeOAuth:
		return c.Access
	}
	return ""
}

// Profiles is the content of auth-profiles.json.
type Profiles struct {
	Version  int                   `json:"version"`
	Profiles map[string]Credential `json:"profiles"`
	Order    map[string][]string   `json:"order,omitempty"`
}

func newProfiles() *Profiles {
	return &Profiles{Version: 1, Profiles: map[string]Credential{}, Order: map[string][]string{}}
}

// UsageStats is what the gateway learned about one profile (epoch ms).
type UsageStats struct {
	LastUsed       int64          `json:"lastUsed,omitempty"`
	CooldownUntil  int64          `json:"cooldownUntil,omitempty"`
	CooldownModel  string         `json:"cooldownModel,omitempty"`
	DisabledUntil  int64          `json:"disabledUntil,omitempty"`
	DisabledReason string         `json:"disabledReason,omitempty"`
	ErrorCount     int            `json:"errorCount,omitempty"`
	FailureCounts  map[string]int `json:"failureCounts,omitempty"`
	LastFailureAt  int64          `json:"lastFailureAt,omitempty"`
	// SecretTag is the Tag of the secret the last failure was recorded
	// for ("" before it was recorded, and for OAuth logins).
	SecretTag string `json:"secretTag,omitempty"`
	// Scope names the only client the provider accepts the credential
	// from ("claude-code"), learned from its answer; "" for any client.
	Scope string `json:"scope,omitempty"`
}

// State is the content of auth-state.json.
type State struct {
	Version    int                    `json:"version"`
	LastGood   map[string]string      `json:"lastGood"`
	UsageStats map[string]*UsageStats `json:"usageStats"`
	// RecentModels records the provider/model refs this agent's requests
	// asked for lately (epoch ms of the last request the gateway noted),
	// at most MaxRecentModels, so that status commands in another process
	// can resolve them too.
	RecentModels map[string]int64 `json:"recentModels,omitempty"`
}

// MaxRecentModels bounds State.RecentModels: the oldest is dropped.
const MaxRecentModels = 16

// NoteRecentModel records a request for ref at (epoch ms), keeping the
// MaxRecentModels most recent refs.
func (st *State) NoteRecentModel(ref string, at int64) {
	st.RecentModels = NoteRecent(st.RecentModels, ref, at)
}

// NoteRecent returns m (a new map, m is not modified) with ref at the later
// of its time and at, and only the MaxRecentModels most recent refs.
func NoteRecent(m map[string]int64, ref string, at int64) map[string]int64 {
	out := make(map[string]int64, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[ref] = max(out[ref], at)
	for len(out) > MaxRecentModels {
		oldest, first := "", true
		for k, v := range out {
			if first || v < out[oldest] || (v == out[oldest] && k < oldest) {
				oldest, first = k, false
			}
		}
		delete(out, oldest)
	}
	return out
}

func newState() *State {
	return &State{Version: 1, LastGood: map[string]string{}, UsageStats: map[string]*UsageStats{}}
}

// Session pin sources.
const (
	PinUser = "user"
	PinAuto = "auto"
)

// Session is one chat session's overrides.
type Session struct {
	ModelOverride             string `json:"modelOverride,omitempty"`
	AuthProfileOverride       string `json:"authProfileOverride,omitempty"`
	AuthProfileOverrideSource string `json:"authProfileOverrideSource,omitempty"` // user | auto
	CreatedAt                 int64  `json:"createdAt,omitempty"`
	UpdatedAt                 int64  `json:"updatedAt,omitempty"`
}

// Sessions is the content of sessions.json.
type Sessions struct {
	Version  int                 `json:"version"`
	Sessions map[string]*Session `json:"sessions"`
	// Resets remembers, per session id, when it was last reset (epoch ms),
	// so that an auto pin learned before the reset but written after it
	// does not bring the old session back. Entries are kept for a while.
	Resets map[string]int64 `json:"resets,omitempty"`
}

// resetMemory is how long a reset is remembered: far longer than the
// gateway ever holds an unwritten pin.
const resetMemory = 10 * 60 * 1000

// Reset drops a session's overrides and pins and remembers when.
func (ss *Sessions) Reset(id string, at int64) {
	delete(ss.Sessions, id)
	if ss.Resets == nil {
		ss.Resets = map[string]int64{}
	}
	ss.Resets[id] = at
	for k, t := range ss.Resets {
		if at-t > resetMemory {
			delete(ss.Resets, k)
		}
	}
}

// ResetAfter reports whether session id was reset at or after at (epoch
// ms): something learned at that time is about the old session.
func (ss *Sessions) ResetAfter(id string, at int64) bool {
	t, ok := ss.Resets[id]
	return ok && t >= at
}

func newSessions() *Sessions {
	return &Sessions{Version: 1, Sessions: map[string]*Session{}}
}
