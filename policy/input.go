package policy

// Input is the document the selection policy is evaluated over
// (DESIGN §5). Times are epoch milliseconds. It never carries a secret:
// profiles are described by metadata only.
type Input struct {
	Now      int64          `json:"now"`
	Agent    AgentFacts     `json:"agent"`
	Session  SessionFacts   `json:"session"`
	Request  RequestFacts   `json:"request"`
	Order    OrderFacts     `json:"order"`
	Profiles []ProfileFacts `json:"profiles"`
	Env      []EnvFacts     `json:"env"`

	list *ProfileList // set by SetProfiles: Profiles prepared once
}

// AgentFacts names the agent a request is made for.
type AgentFacts struct {
	ID string `json:"id"`
}

// SessionFacts describes the caller's session and its credential pin.
type SessionFacts struct {
	ID  string `json:"id"`
	New bool   `json:"new"`
	Pin *Pin   `json:"pin"`
}

// Pin is a session's credential pin. Source is "user" (strict, set by
// /model …@profile) or "auto" (the last profile that succeeded).
type Pin struct {
	Profile string `json:"profile"`
	Source  string `json:"source"`
}

// RequestFacts describes the request being routed.
type RequestFacts struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	API      string `json:"api"`
	Stream   bool   `json:"stream"`
	// Client is who is calling, as the gateway identified it from the
	// user agent and client headers.
	Client ClientFacts `json:"client"`
}

// ClientFacts names the calling client: "claude-code", "codex",
// "openclaw", "anthropic-sdk", "openai-sdk", "langchain", "ai-sdk",
// "curl" or "unknown", and its version ("" when not known).
type ClientFacts struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// OrderFacts carries the explicit profile orders for the request's
// provider: the agent store's and the config's. Either may be empty.
type OrderFacts struct {
	Store  []string `json:"store"`
	Config []string `json:"config"`
}

// ProfileFacts is everything the policy may know about one credential
// profile of the request's provider. Nullable fields are pointers.
type ProfileFacts struct {
	ID             string  `json:"id"`
	Provider       string  `json:"provider"`
	Type           string  `json:"type"`   // api_key | token | oauth
	Status         string  `json:"status"` // ok | static | expiring | expired | invalid | missing
	Kind           string  `json:"kind"`   // api_key | setup_token | oauth_access | unknown
	ExpiresAt      *int64  `json:"expiresAt"`
	Email          *string `json:"email"`
	LastUsed       int64   `json:"lastUsed"`
	CooldownUntil  int64   `json:"cooldownUntil"`
	CooldownModel  *string `json:"cooldownModel"` // cooldown applies to this model only; nil or "" means every model
	DisabledUntil  int64   `json:"disabledUntil"`
	DisabledReason *string `json:"disabledReason"`
	ErrorCount     int     `json:"errorCount"`
}

// EnvFacts names an environment variable that can serve the provider.
// Only the variable's name and credential type appear, never its value.
type EnvFacts struct {
	Var  string `json:"var"`
	Type string `json:"type"`
}

// Decision is what data.opensoul.select.decision evaluates to.
// Candidates are tried in order; Cooling are listed for display only;
// Strict means the caller must not fail over to another profile.
type Decision struct {
	Candidates []string          `json:"candidates"`
	Cooling    []string          `json:"cooling"`
	Strict     bool              `json:"strict"`
	Reasons    map[string]string `json:"reasons"`
}
