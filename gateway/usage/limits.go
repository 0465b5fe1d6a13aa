package usage

import "time"

// Limits is what a provider said about a credential's quota on one
// answer: its standing and each rate-limit window. The provider module
// reads them from the headers (the observe op); the gateway hands them
// on with who was served.
type Limits struct {
	Time time.Time // when the answer came
	// Agent is the agent whose store holds the credential ("" for a key
	// from the environment or the config): two agents' profiles with the
	// same id are two credentials, an agent using main's profile spends
	// main's.
	Agent    string
	Provider string
	Profile  string
	Model    string
	// Status is allowed, warning or rejected; "" when the headers do not
	// say. ResetAt is when a rejected status lifts (zero: unknown).
	Status  string
	ResetAt time.Time
	Windows []Window
}

// Window is one limit. Limit and Remaining are -1 and Utilization is
// negative when unknown; ResetAt is zero when unknown.
type Window struct {
	Name        string    `json:"name"`
	Limit       int64     `json:"limit"`
	Remaining   int64     `json:"remaining"`
	Utilization float64   `json:"utilization"` // 0..1 of the window spent
	ResetAt     time.Time `json:"resetAt"`
}

// Headroom is the share of the window left (0..1), or -1 when unknown.
func (w Window) Headroom() float64 {
	if w.Utilization < 0 {
		return -1
	}
	return 1 - w.Utilization
}
