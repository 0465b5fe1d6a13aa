package wasm

import "encoding/json"

// The JSON messages of provider module ABI v1 (DESIGN §6, wasm/ABI.md).
// Every request carries "v":1 and an "op"; every response carries "ok".

// Ops a module may support.
const (
	OpInfo     = "info"
	OpCheck    = "check"
	OpHeaders  = "headers"
	OpClassify = "classify"
)

// Info is the answer to the info op. Ops, when the module sends it, lists
// the optional ops it answers (check, headers, classify); a module without
// it is asked every op (ABI.md "info").
type Info struct {
	Provider string   `json:"provider"`
	Version  string   `json:"version"`
	Ops      []string `json:"ops,omitempty"`
	// OAuth, when the module sends it, describes the provider's OAuth
	// client (ABI.md "info"; decoded by gateway/oauth.Client).
	OAuth json.RawMessage `json:"oauth,omitempty"`
	// Observe, when the module answers the observe op, names the answers
	// it wants to see (ABI.md "observe").
	Observe *ObserveDecl `json:"observe,omitempty"`
}

// CheckRequest asks a module whether a secret looks usable. Now is epoch
// ms: guests have no real clock.
type CheckRequest struct {
	Type      string `json:"type"`
	Secret    string `json:"secret"`
	ExpiresAt *int64 `json:"expiresAt"`
	Now       int64  `json:"now"`
}

// CheckResult is a module's verdict on a secret.
type CheckResult struct {
	Valid     bool   `json:"valid"`
	Kind      string `json:"kind"` // api_key | setup_token | oauth_access | unknown
	ExpiresAt *int64 `json:"expiresAt"`
	Reason    string `json:"reason,omitempty"`
	Hint      string `json:"hint,omitempty"`
}

// HeadersRequest asks how to present a secret upstream. AccountID is an
// OAuth login's account id, when it has one (ABI 1 revision 3).
type HeadersRequest struct {
	Type      string `json:"type"`
	Secret    string `json:"secret"`
	AccountID string `json:"accountId,omitempty"`
}

// HeadersResult lists headers to set and to remove on the upstream request.
// BaseURL, when set, is where this credential's requests go instead of the
// provider's base URL, with StripPrefix removed from the request path first
// (ABI 1 revision 3: a ChatGPT-plan login goes to the ChatGPT backend).
type HeadersResult struct {
	Set         map[string]string `json:"set"`
	Remove      []string          `json:"remove"`
	BaseURL     string            `json:"baseUrl,omitempty"`
	StripPrefix string            `json:"stripPrefix,omitempty"`
}

// ClassifyRequest describes an upstream answer. Header names are lower
// case; Body holds at most the first 8 KiB.
type ClassifyRequest struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Classification is a module's reading of an upstream failure.
// Reason is one of the failure reasons of DESIGN §4.
type Classification struct {
	Failover     bool   `json:"failover"`
	Reason       string `json:"reason"`
	RetryAfterMs *int64 `json:"retryAfterMs"`
	Hint         string `json:"hint,omitempty"`
	// Scope, with reason credential_scope, names the only client the
	// provider accepts the credential from, as the gateway names clients
	// ("claude-code"; ABI 1 revision 5). The gateway then keeps the
	// credential for that client's requests instead of disabling it.
	Scope string `json:"scope,omitempty"`
}

// ABIVersion is the version of the provider module ABI this host speaks.
const ABIVersion = 1

// Kinds of credential a check may report.
const (
	KindAPIKey      = "api_key"
	KindSetupToken  = "setup_token"
	KindOAuthAccess = "oauth_access"
	KindUnknown     = "unknown"
)

// Failure reasons of DESIGN §4, as classify reports them. ReasonOK and
// ReasonUnknown cover statuses that are not failures or fit no row.
const (
	ReasonRateLimit       = "rate_limit"
	ReasonAuth            = "auth"
	ReasonBilling         = "billing"
	ReasonCredentialScope = "credential_scope"
	ReasonModelNotFound   = "model_not_found"
	ReasonTimeout         = "timeout"
	ReasonFormat          = "format"
	ReasonOK              = "ok"
	ReasonUnknown         = "unknown"
)

// Error codes a module may answer with in {"ok":false,"error":{...}}.
const (
	CodeUnsupportedOp      = "unsupported_op"
	CodeUnsupportedVersion = "unsupported_version"
	CodeBadRequest         = "bad_request"
)

// ProviderInfo describes one provider the registry knows.
type ProviderInfo struct {
	Name string `json:"name"`
	// Source is "builtin", "generic" (no module: Bearer header and the
	// DESIGN §4 table), or the path of a module file.
	Source     string `json:"source"`
	ABIVersion int    `json:"abiVersion,omitempty"`
	Version    string `json:"version,omitempty"` // the module's own version (info op)
	// OAuth is the OAuth client the module's info declares, as sent.
	OAuth json.RawMessage `json:"oauth,omitempty"`
	Ops   []string        `json:"ops"` // ops the module answers
	// OpsDeclared: Ops is the module's own declaration; otherwise what it
	// answered to one probe call each (it is still asked every op).
	OpsDeclared bool     `json:"opsDeclared"`
	Error       string   `json:"error,omitempty"`   // why the module did not load
	Backoff     *Backoff `json:"backoff,omitempty"` // set while its breaker skips the module
}
