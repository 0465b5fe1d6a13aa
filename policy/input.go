package policy

import (
	"math"
	"math/bits"
)

// Input is the document the selection policy is evaluated over
// (DESIGN §5). Times are epoch milliseconds. It never carries a secret:
// profiles are described by metadata only.
type Input struct {
	Now     int64        `json:"now"`
	Agent   AgentFacts   `json:"agent"`
	Session SessionFacts `json:"session"`
	Request RequestFacts `json:"request"`
	Order   OrderFacts   `json:"order"`
	// Profiles are the provider's profiles. After SetProfiles with an
	// overlay list it is nil until read through ProfileFacts (the engine
	// fills it before it evaluates): read it with ProfileFacts.
	Profiles []ProfileFacts `json:"profiles"`
	Env      []EnvFacts     `json:"env"`

	list *ProfileList // set by SetProfiles: Profiles prepared once
}

// AgentFacts names the agent a request is made for, with the free-form
// attributes the config gives it (agents.<id>.attrs: team, purpose,
// budget class…; an empty object when none).
type AgentFacts struct {
	ID    string            `json:"id"`
	Attrs map[string]string `json:"attrs"`
	// Usage is what the agent spent over every profile it used (see
	// UsageFacts); nil when the gateway keeps no usage (usage.enabled off)
	// or no loaded policy may read it (Engine.ReadsUsage).
	Usage *UsageFacts `json:"usage"`
}

// SessionFacts describes the caller's session and its credential pin.
// For a request without a session (ID "") the other facts are zero.
type SessionFacts struct {
	ID  string `json:"id"`
	New bool   `json:"new"`
	Pin *Pin   `json:"pin"`
	// Client is the client that opened the session (its first request
	// the gateway saw), identified like RequestFacts.Client.
	Client ClientFacts `json:"client"`
	// Started is when the session began (epoch ms): when it was first
	// stored, or first seen by this gateway; 0 when not known.
	Started int64 `json:"started"`
	// Requests counts the session's requests, this one included, rounded
	// down to a power of two (see SessionRequestsBucket) so that a busy
	// session's decision stays cached between the steps.
	Requests int64 `json:"requests"`
}

// SessionRequestsBucket quantizes a request count for SessionFacts:
// 0 stays 0, and n > 0 becomes the largest power of two not above it
// (1, 2, 4, 8, …). A policy can still tell a session's first request
// (1), its first few and a long one (>= 64, say), while a session's facts
// change only log2(n) times, so its cached decision keeps hitting.
func SessionRequestsBucket(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return 1 << (bits.Len64(uint64(n)) - 1)
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
	// Scope names the only client the provider accepts the credential
	// from ("claude-code" after Anthropic answered that a setup token is
	// "only authorized for use with Claude Code"); nil: any client.
	Scope *string `json:"scope"`
	// Limits is what the profile's provider last reported about its quota
	// (rate-limit headers read by the provider module); nil: nothing known.
	Limits *LimitFacts `json:"limits"`
	// Usage is what the profile spent, for every agent (see UsageFacts);
	// nil when the gateway keeps no usage (usage.enabled off) or no loaded
	// policy may read it (Engine.ReadsUsage).
	Usage *UsageFacts `json:"usage"`
}

// UsageFacts are the totals over the last hour, 5 hours, 24 hours and 30
// days (input.profiles[i].usage["24h"].cost). The windows move in minute
// steps (30 days: hour steps): "1h" is the current minute and the 59
// before it. Every total enters the input quantized, so that the
// decision cache keeps hitting while the counters move.
type UsageFacts struct {
	H1  UsageTotals `json:"1h"`
	H5  UsageTotals `json:"5h"`
	H24 UsageTotals `json:"24h"`
	D30 UsageTotals `json:"30d"`
}

// UsageTotals are one window's totals. Counts (requests and tokens) keep
// two significant digits, rounded down (QuantizeCount: 0–99 exact, then
// 100, 110, …, 990, 1000, 1100, …); Cost is in US dollars, two
// significant digits rounded down and never finer than a cent
// (QuantizeCost: $0.01–$0.99 in cents, $1.0–$9.9 in dimes, then whole
// dollars, tens, …). A threshold with two significant digits ($20,
// 1500000 tokens) is therefore crossed exactly when the true total
// crosses it; a total reads at most 10% low. Tokens is every token of the
// four kinds (quantized after summing).
type UsageTotals struct {
	Requests   int64   `json:"requests"`
	Tokens     int64   `json:"tokens"`
	Input      int64   `json:"inputTokens"`
	Output     int64   `json:"outputTokens"`
	CacheRead  int64   `json:"cacheReadTokens"`
	CacheWrite int64   `json:"cacheWriteTokens"`
	Cost       float64 `json:"cost"`
}

// QuantizeCount keeps n's two leading digits, rounding down: 0–99 stay,
// 100–999 go in tens, 1000–9999 in hundreds, and so on.
func QuantizeCount(n int64) int64 {
	if n < 100 {
		return max(n, 0)
	}
	step := int64(1)
	for m := n; m >= 100; m /= 10 {
		step *= 10
	}
	return n / step * step
}

// QuantizeCost turns micro-dollars into dollars with two significant
// digits, rounded down, never finer than a cent.
func QuantizeCost(micros int64) float64 {
	return float64(QuantizeCount(micros/10_000)) / 100
}

// LimitFacts is a profile's quota as its provider last reported it, in
// coarse steps so that the decision cache keeps hitting while counters
// move: Headroom is the share left of the tightest window (requests,
// tokens, a subscription's 5-hour window), rounded down to a tenth
// (QuantizeHeadroom). Status is "allowed", "warning", "rejected" or "";
// ResetAt (epoch ms, 0: unknown) is when a rejected status lifts.
type LimitFacts struct {
	Headroom float64 `json:"headroom"`
	Status   string  `json:"status"`
	ResetAt  int64   `json:"resetAt"`
}

// QuantizeHeadroom rounds a share left (0..1) down to a tenth, the step
// in which headroom reaches the policy.
func QuantizeHeadroom(h float64) float64 {
	return math.Floor(min(max(h, 0), 1)*10) / 10
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
//
// Rotate is how many leading candidates are of equal rank (optional in
// the policy's answer; absent means 1, or 0 without candidates). The
// caller may serve any of them first: the gateway serves the least
// recently used of them (to a request without a session, and to a new
// session's first request), and the rest in the policy's order. The policy
// stays the author of which profiles are equal; the rotation itself is not
// in the input, so the decision stays cached while the gateway rotates.
type Decision struct {
	Candidates []string          `json:"candidates"`
	Cooling    []string          `json:"cooling"`
	Strict     bool              `json:"strict"`
	Reasons    map[string]string `json:"reasons"`
	Rotate     int               `json:"rotate"`
}

// Equal returns the leading candidates of equal rank (see Rotate): at
// most one unless the policy said otherwise.
func (d Decision) Equal() []string {
	n := min(max(d.Rotate, 1), len(d.Candidates))
	return d.Candidates[:n]
}
