package login

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway"
)

// probeOutcome is what models status shows per probe and --check lists.
func TestProbeOutcome(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		r    gateway.ProbeResult
		want string
	}{
		{"ok", gateway.ProbeResult{OK: true, LatencyMs: 12}, "ok 12ms"},
		{"ok refreshed", gateway.ProbeResult{OK: true, LatencyMs: 5, Refreshed: true}, "ok 5ms (login refreshed first)"},
		{"no answer", gateway.ProbeResult{Error: "dial tcp: refused", LatencyMs: 3}, "error: dial tcp: refused"},
		{"provider error", gateway.ProbeResult{Status: 401, Reason: "auth", ErrorType: "authentication_error", Message: "invalid x-api-key", LatencyMs: 40},
			"401 auth (authentication_error): invalid x-api-key after 40ms"},
		{"type and code", gateway.ProbeResult{Status: 429, Reason: "rate_limit", ErrorType: "requests", ErrorCode: "rate_limit_exceeded", LatencyMs: 9},
			"429 rate_limit (requests/rate_limit_exceeded) after 9ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := probeOutcome(tc.r); got != tc.want {
				t.Errorf("probeOutcome = %q, want %q", got, tc.want)
			}
		})
	}
}

// Only failed probes reach --check; nil probes (no --probe) print nothing,
// an empty list says there was nothing to probe.
func TestProbesFailedAndWriteProbes(t *testing.T) {
	t.Parallel()
	probes := []gateway.ProbeResult{
		{Profile: "anthropic:a", Model: "claude-sonnet-5", OK: true, LatencyMs: 1, URL: "https://api.anthropic.com/v1/messages"},
		{Profile: "openai:b", Model: "gpt-5", Error: "timeout"},
	}
	if got := ProbesFailed(probes); !slices.Equal(got, []string{"probe openai:b: error: timeout"}) {
		t.Errorf("ProbesFailed = %q", got)
	}
	var none, empty, some bytes.Buffer
	WriteProbes(&none, nil)
	WriteProbes(&empty, []gateway.ProbeResult{})
	WriteProbes(&some, probes)
	if none.Len() != 0 {
		t.Errorf("nil probes wrote %q", none.String())
	}
	if !strings.Contains(empty.String(), "no stored profile to probe") {
		t.Errorf("empty probes wrote %q", empty.String())
	}
	for _, want := range []string{"PROFILE", "anthropic:a", "ok 1ms", "https://api.anthropic.com/v1/messages", "openai:b", "error: timeout"} {
		if !strings.Contains(some.String(), want) {
			t.Errorf("WriteProbes lacks %q:\n%s", want, some.String())
		}
	}
}
