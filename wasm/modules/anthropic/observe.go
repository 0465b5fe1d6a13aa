package main

import (
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

const ratelimitPrefix = "anthropic-ratelimit-"

// observe reads Anthropic's rate-limit headers. API keys get a window per
// dimension (anthropic-ratelimit-{requests,tokens,input-tokens,
// output-tokens}-{limit,remaining,reset}, reset in RFC 3339); subscription
// logins get the unified headers: a status (allowed, allowed_warning,
// rejected) with its reset in epoch seconds, and per window (5h, 7d, …)
// a utilization from 0 to 1, a reset and a status.
//
// An API key's limits are per model class (Anthropic's rate-limit page:
// "limits are applied per model class"), so an answer with only
// per-dimension headers is scoped to its model; the unified windows are
// the whole subscription's.
func observe(r guest.Request) guest.Observation {
	var o guest.Observation
	var ws guest.Windows
	perModel, unified := false, false
	for name, v := range r.Headers {
		rest, ok := strings.CutPrefix(name, ratelimitPrefix)
		if !ok {
			continue
		}
		if key, ok := strings.CutPrefix(rest, "unified-"); ok {
			observeUnified(&o, &ws, key, v)
			unified = true
			continue
		}
		i := strings.LastIndexByte(rest, '-')
		if i <= 0 {
			continue
		}
		perModel = true
		w := ws.Get(rest[:i])
		switch rest[i+1:] {
		case "limit":
			w.Limit = guest.Count(v)
		case "remaining":
			w.Remaining = guest.Count(v)
		case "reset":
			w.ResetAt = guest.RFC3339Ms(v)
		}
	}
	o.Windows = ws.List()
	if perModel && !unified {
		o.Scope = guest.ScopeModel
	}
	if r.Status == 429 {
		o.Status = "rejected"
		if ms := guest.RetryAfterMs(r.Headers); ms >= 0 && r.Now > 0 {
			o.ResetAt = r.Now + ms
		}
	} else if o.Status == "" && len(o.Windows) > 0 {
		o.Status = "allowed"
	}
	return o
}

func observeUnified(o *guest.Observation, ws *guest.Windows, key, v string) {
	switch key {
	case "status":
		o.Status = unifiedStatus(v)
		return
	case "reset":
		if ms := guest.EpochMs(v); ms > 0 && o.ResetAt == 0 {
			o.ResetAt = ms
		}
		return
	}
	i := strings.LastIndexByte(key, '-')
	if i <= 0 {
		return // representative-claim, fallback-percentage and the like
	}
	window, field := key[:i], key[i+1:]
	switch field {
	case "utilization":
		ws.Get(window).Utilization = guest.Fraction(v)
	case "reset":
		ws.Get(window).ResetAt = guest.EpochMs(v)
	}
}

func unifiedStatus(v string) string {
	switch strings.TrimSpace(v) {
	case "allowed":
		return "allowed"
	case "allowed_warning":
		return "warning"
	case "rejected":
		return "rejected"
	}
	return ""
}
