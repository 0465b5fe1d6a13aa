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
	for _, s := range []string{"sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "sk-proj-x", "", " ", "\n"} {
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
		_ = guest.Bearer(r)
		_ = classify(guest.Request{Status: int(now % 600), Body: secret, Headers: map[string]string{"retry-after": typ}})
	})
}

func TestObserve(t *testing.T) {
	const now = 1_800_000_000_000
	h := map[string]string{"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000060000"}
	want := guest.Observation{Status: "rejected", ResetAt: 1800000060000, Windows: []guest.Window{
		{Name: "requests", Limit: 20, Remaining: 0, ResetAt: 1800000060000, Utilization: -1}}}
	if got := observe(guest.Request{Op: "observe", Status: 429, Headers: h, Now: now}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	h["x-ratelimit-remaining"] = "19"
	want.Status, want.ResetAt, want.Windows[0].Remaining = "allowed", 0, 19
	if got := observe(guest.Request{Op: "observe", Status: 200, Headers: h, Now: now}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
