package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/wasm/modules/internal/guest"
)

// The module's logic, natively: no input panics, and no verdict or hint
// repeats the secret.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"sk-ant-api03-Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj", "sk-ant-oat01-Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_GjAA", "sk-proj-abc", "", " ", "\n"} {
		for _, typ := range []string{"api_key", "token", "oauth", ""} {
			f.Add(s, typ, int64(1_800_000_000_000))
		}
	}
	f.Fuzz(func(t *testing.T, secret, typ string, now int64) {
		r := guest.Request{Op: "check", Type: typ, Secret: secret, Now: now}
		c := check(r)
		if len(secret) >= 8 && strings.Contains(c.Reason+c.Hint, secret) {
			t.Fatalf("the verdict repeats the secret: %+v", c)
		}
		if c.Valid && c.Reason != "" {
			t.Fatalf("valid with a reason: %+v", c)
		}
		_ = headers(r)
		_ = classify(guest.Request{Status: int(now % 600), Body: secret, Headers: map[string]string{"retry-after": typ}})
	})
}

func TestObserve(t *testing.T) {
	const now = 1_800_000_000_000
	for _, tc := range []struct {
		name    string
		status  int
		headers map[string]string
		want    guest.Observation
	}{
		{"api key", 200, map[string]string{
			"anthropic-ratelimit-requests-limit":         "50",
			"anthropic-ratelimit-requests-remaining":     "49",
			"anthropic-ratelimit-requests-reset":         "2027-01-15T08:00:01Z",
			"anthropic-ratelimit-input-tokens-limit":     "30000",
			"anthropic-ratelimit-input-tokens-remaining": "27000",
			"anthropic-ratelimit-input-tokens-reset":     "2027-01-15T08:00:07Z",
			"anthropic-ratelimit-tokens-limit":           "38000",
			"anthropic-ratelimit-tokens-remaining":       "nonsense",
		}, guest.Observation{Status: "allowed", Windows: []guest.Window{
			{Name: "input-tokens", Limit: 30000, Remaining: 27000, ResetAt: 1800000007000, Utilization: -1},
			{Name: "requests", Limit: 50, Remaining: 49, ResetAt: 1800000001000, Utilization: -1},
			{Name: "tokens", Limit: 38000, Remaining: -1, ResetAt: -1, Utilization: -1},
		}, Scope: guest.ScopeModel}},
		{"subscription, warning", 200, map[string]string{
			"anthropic-ratelimit-unified-status":               "allowed_warning",
			"anthropic-ratelimit-unified-reset":                "1800003600",
			"anthropic-ratelimit-unified-5h-utilization":       "0.91",
			"anthropic-ratelimit-unified-5h-reset":             "1800003600",
			"anthropic-ratelimit-unified-5h-status":            "allowed_warning",
			"anthropic-ratelimit-unified-7d-utilization":       "0.4",
			"anthropic-ratelimit-unified-7d-reset":             "1800500000",
			"anthropic-ratelimit-unified-representative-claim": "five_hour",
		}, guest.Observation{Status: "warning", ResetAt: 1800003600000, Windows: []guest.Window{
			{Name: "5h", Limit: -1, Remaining: -1, ResetAt: 1800003600000, Utilization: 0.91},
			{Name: "7d", Limit: -1, Remaining: -1, ResetAt: 1800500000000, Utilization: 0.4},
		}}},
		{"429", 429, map[string]string{"retry-after": "20", "anthropic-ratelimit-requests-remaining": "0"},
			guest.Observation{Status: "rejected", ResetAt: now + 20000, Windows: []guest.Window{
				{Name: "requests", Limit: -1, Remaining: 0, ResetAt: -1, Utilization: -1}}, Scope: guest.ScopeModel}},
		{"nothing known", 200, map[string]string{"retry-after": "x"}, guest.Observation{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := observe(guest.Request{Op: "observe", Status: tc.status, Headers: tc.headers, Now: now})
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
