package main

import (
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

// observe reads OpenAI's rate-limit headers: for API keys
// x-ratelimit-{limit,remaining,reset}-{requests,tokens}, the reset as a
// duration from now ("6m0s", "20ms"); for ChatGPT-plan logins (the Codex
// backend) x-codex-{primary,secondary}-used-percent with
// -reset-after-seconds.
//
// An API key's x-ratelimit-* counters are per model (OpenAI's rate-limit
// guide: "rate limits are defined at the organization and project level
// ... and vary by model"), so such an answer is scoped to its model; a
// ChatGPT plan's windows are the whole login's.
func observe(r guest.Request) guest.Observation {
	var o guest.Observation
	var ws guest.Windows
	perModel, plan := false, false
	for name, v := range r.Headers {
		if rest, ok := strings.CutPrefix(name, "x-ratelimit-"); ok {
			field, dim, ok := strings.Cut(rest, "-")
			if !ok {
				continue
			}
			perModel = true
			switch w := ws.Get(dim); field {
			case "limit":
				w.Limit = guest.Count(v)
			case "remaining":
				w.Remaining = guest.Count(v)
			case "reset":
				w.ResetAt = guest.AfterMs(v, r.Now)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(name, "x-codex-"); ok {
			window, field, ok := strings.Cut(rest, "-")
			if !ok || window != "primary" && window != "secondary" {
				continue
			}
			plan = true
			switch w := ws.Get(window); field {
			case "used-percent":
				if f := guest.Fraction(v); f >= 0 {
					w.Utilization = f / 100
				}
			case "reset-after-seconds":
				if n := guest.Count(v); n >= 0 && r.Now > 0 {
					w.ResetAt = r.Now + n*1000
				}
			}
		}
	}
	o.Windows = ws.List()
	if perModel && !plan {
		o.Scope = guest.ScopeModel
	}
	switch {
	case r.Status == 429:
		o.Status = "rejected"
		if ms := guest.RetryAfterMs(r.Headers); ms >= 0 && r.Now > 0 {
			o.ResetAt = r.Now + ms
		}
	case len(o.Windows) > 0:
		o.Status = "allowed"
	}
	return o
}
