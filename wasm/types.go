package wasm

// The JSON messages of provider module ABI v1 (DESIGN §6, wasm/ABI.md).
// Every request carries "v":1 and an "op"; every response carries "ok".

// Ops a module may support.
const (
	OpInfo     = "info"
	OpCheck    = "check"
	OpHeaders  = "headers"
	OpClassify = "classify"
)

// Info is the answer to the info op.
type Info struct {
	Provider string `json:"provider"`
	Version  string `json:"version"`
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

// HeadersRequest asks how to present a secret upstream.
type HeadersRequest struct {
	Type   string `json:"type"`
	Secret string `json:"secret"`
}

// HeadersResult lists headers to set and to remove on the upstream request.
type HeadersResult struct {
	Set    map[string]string `json:"set"`
	Remove []string          `json:"remove"`
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
}
