package main

import (
	"strings"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

// observe reads OpenRouter's x-ratelimit-{limit,remaining,reset} (the
// reset in epoch ms), a requests window.
func observe(r guest.Request) guest.Observation {
	var o guest.Observation
	var ws guest.Windows
	for name, v := range r.Headers {
		rest, ok := strings.CutPrefix(name, "x-ratelimit-")
		if !ok {
			continue
		}
		w := ws.Get("requests")
		switch rest {
		case "limit":
			w.Limit = guest.Count(v)
		case "remaining":
			w.Remaining = guest.Count(v)
		case "reset":
			w.ResetAt = guest.EpochMs(v)
		}
	}
	o.Windows = ws.List()
	switch {
	case r.Status == 429:
		o.Status = "rejected"
		if ms := guest.RetryAfterMs(r.Headers); ms >= 0 && r.Now > 0 {
			o.ResetAt = r.Now + ms
		} else if len(o.Windows) > 0 && o.Windows[0].ResetAt > 0 {
			o.ResetAt = o.Windows[0].ResetAt
		}
	case len(o.Windows) > 0:
		o.Status = "allowed"
	}
	return o
}
