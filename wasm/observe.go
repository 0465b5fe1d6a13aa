package wasm

import (
	"context"
	"fmt"
	"strings"
)

// The observe op (ABI 1 revision 4, scope in revision 6; ABI.md "observe") reads the rate-limit
// facts a provider sends on its answers. It sits on every answer, so the
// host only calls a module that declared it, and only for an answer that
// carries one of the header prefixes the module asked for; the module
// gets those headers and no others.

// OpObserve reads an answer's rate-limit headers into limit facts.
const OpObserve = "observe"

// ObserveDecl is info's "observe" field: which answers the module wants.
type ObserveDecl struct {
	// Headers are lower-case header name prefixes ("anthropic-ratelimit-");
	// an answer with none of them is not sent to the module.
	Headers []string `json:"headers"`
}

// ObserveRequest is an answer's status and its headers whose names start
// with a declared prefix (lower case), at Now (epoch ms).
type ObserveRequest struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Now     int64             `json:"now"`
}

// Observation is what a module read: the credential's standing (Status,
// "" when the headers do not say) and one Window per limit it reported.
type Observation struct {
	Status  string   `json:"status"`  // "", allowed, warning or rejected
	ResetAt *int64   `json:"resetAt"` // epoch ms when a rejected status lifts
	Windows []Window `json:"windows"`
	// Scope (revision 6) is what the limits count: ScopeModel when the
	// provider keeps them per model (or model class), so they hold for
	// requests for the answer's model only; "" or ScopeCredential when
	// they are the whole credential's (every module before revision 6).
	Scope string `json:"scope"`
}

// Observation scopes.
const (
	ScopeCredential = "credential"
	ScopeModel      = "model"
)

// Window is one limit: requests or tokens per minute, a subscription's
// 5-hour window. Every field but Name may be unknown (nil).
type Window struct {
	Name        string   `json:"name"`
	Limit       *int64   `json:"limit"`
	Remaining   *int64   `json:"remaining"`
	ResetAt     *int64   `json:"resetAt"`     // epoch ms when the window refills
	Utilization *float64 `json:"utilization"` // 0..1 of the window spent
}

// Observation statuses.
const (
	StatusAllowed  = "allowed"
	StatusWarning  = "warning"
	StatusRejected = "rejected"
)

// maxWindows bounds an observation (the built-ins report at most 6).
const maxWindows = 16

// ObserveHeaders returns the header prefixes provider's module declared
// for observe, or nil when it does not observe (or is not loaded yet:
// the gateway's first request loads it for its headers). It takes no
// lock, since the gateway calls it for every answer.
func (r *Registry) ObserveHeaders(provider string) []string {
	e := r.entry(provider)
	if e == nil {
		return nil
	}
	if p := e.observe.Load(); p != nil {
		return *p
	}
	return nil
}

// Observe asks provider's module to read an answer's rate-limit headers.
// ok is false when the module does not observe. Utilization is filled in
// from Limit and Remaining when the module leaves it out.
func (r *Registry) Observe(ctx context.Context, provider string, req ObserveRequest) (obs Observation, ok bool, err error) {
	if r.ObserveHeaders(provider) == nil {
		return Observation{}, false, nil
	}
	var resp struct {
		envelope
		Observation
	}
	m, err := r.ask(ctx, provider, OpObserve, req, "", &resp.envelope, &resp)
	if err != nil || m == nil {
		return Observation{}, false, err
	}
	if err := validObservation(&resp.Observation); err != nil {
		me := &ModuleError{Provider: m.provider, File: m.file, Op: OpObserve, Err: err}
		r.host.report(me, ErrBadResponse)
		return Observation{}, false, me
	}
	return resp.Observation, true, nil
}

func validObservation(o *Observation) error {
	switch o.Status {
	case "", StatusAllowed, StatusWarning, StatusRejected:
	default:
		return fmt.Errorf("%w: unknown status %.20q", ErrBadResponse, o.Status)
	}
	switch o.Scope {
	case "", ScopeCredential, ScopeModel:
	default:
		return fmt.Errorf("%w: unknown scope %.20q (want credential or model)", ErrBadResponse, o.Scope)
	}
	if len(o.Windows) > maxWindows {
		return fmt.Errorf("%w: %d windows, at most %d", ErrBadResponse, len(o.Windows), maxWindows)
	}
	for i := range o.Windows {
		w := &o.Windows[i]
		if w.Name == "" || len(w.Name) > 32 || strings.ContainsFunc(w.Name, badNameRune) {
			return fmt.Errorf("%w: window name %.40q (want 1-32 of a-z 0-9 _ -)", ErrBadResponse, w.Name)
		}
		for _, n := range []*int64{w.Limit, w.Remaining, w.ResetAt} {
			if n != nil && *n < 0 {
				return fmt.Errorf("%w: window %s: a negative count or time", ErrBadResponse, w.Name)
			}
		}
		if w.Utilization == nil && w.Limit != nil && w.Remaining != nil && *w.Limit > 0 {
			u := 1 - float64(min(*w.Remaining, *w.Limit))/float64(*w.Limit)
			w.Utilization = &u
		}
		if w.Utilization != nil {
			u := min(max(*w.Utilization, 0), 1)
			w.Utilization = &u
		}
	}
	return nil
}

func badNameRune(c rune) bool {
	return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-')
}

// observeDecl keeps a declaration's usable prefixes: lower case, not
// empty, at most 8.
func observeDecl(d *ObserveDecl) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, p := range d.Headers {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" && len(out) < 8 {
			out = append(out, p)
		}
	}
	return out
}
