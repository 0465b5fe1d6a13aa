package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/opensoul/opensoul/gateway/store"
)

func TestApplyFailure(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const h = 3600_000
	type step struct {
		reason string
		after  time.Duration // since t0
		retry  time.Duration
	}
	cases := []struct {
		name           string
		cfg            Cooldowns
		steps          []step
		cooldownUntil  int64 // relative to the last step's time; -1: none
		disabledFor    int64 // relative; -1: none
		disabledReason string
		errorCount     int
	}{
		{"rate limit first", Cooldowns{}, []step{{ReasonRateLimit, 0, 0}}, 30_000, -1, "", 1},
		{"rate limit second", Cooldowns{}, []step{{ReasonRateLimit, 0, 0}, {ReasonRateLimit, time.Minute, 0}}, 60_000, -1, "", 2},
		{"rate limit capped", Cooldowns{}, []step{{ReasonRateLimit, 0, 0}, {ReasonRateLimit, 1, 0}, {ReasonRateLimit, 2, 0}, {ReasonRateLimit, 3, 0}, {ReasonRateLimit, 4, 0}}, 300_000, -1, "", 5},
		{"retry-after wins", Cooldowns{}, []step{{ReasonRateLimit, 0, 7 * time.Second}}, 7_000, -1, "", 1},
		{"auth until changed", Cooldowns{}, []step{{ReasonAuth, 0, 0}}, -1, DisabledUntilChanged, ReasonAuth, 1},
		{"scope until changed", Cooldowns{}, []step{{ReasonCredentialScope, 0, 0}}, -1, DisabledUntilChanged, ReasonCredentialScope, 1},
		{"billing 5h", Cooldowns{}, []step{{ReasonBilling, 0, 0}}, -1, 5 * h, ReasonBilling, 1},
		{"billing doubles", Cooldowns{}, []step{{ReasonBilling, 0, 0}, {ReasonBilling, time.Hour, 0}}, -1, 10 * h, ReasonBilling, 2},
		{"billing capped", Cooldowns{}, []step{{ReasonBilling, 0, 0}, {ReasonBilling, 1, 0}, {ReasonBilling, 2, 0}, {ReasonBilling, 3, 0}}, -1, 24 * h, ReasonBilling, 4},
		{"billing configured", Cooldowns{BillingBackoff: time.Hour, BillingMax: 3 * time.Hour}, []step{{ReasonBilling, 0, 0}, {ReasonBilling, 1, 0}, {ReasonBilling, 2, 0}}, -1, 3 * h, ReasonBilling, 3},
		{"one 5xx", Cooldowns{}, []step{{ReasonTimeout, 0, 0}}, -1, -1, "", 1},
		{"two timeouts", Cooldowns{}, []step{{ReasonTimeout, 0, 0}, {ReasonTimeout, 1, 0}}, -1, -1, "", 2},
		{"three in a row", Cooldowns{}, []step{{ReasonTimeout, 0, 0}, {ReasonTimeout, 1, 0}, {ReasonTimeout, 2, 0}}, 30_000, -1, "", 3},
		{"window resets counts", Cooldowns{}, []step{{ReasonRateLimit, 0, 0}, {ReasonRateLimit, 1, 0}, {ReasonRateLimit, 25 * time.Hour, 0}}, 30_000, -1, "", 1},
		{"window configured", Cooldowns{FailureWindow: time.Hour}, []step{{ReasonTimeout, 0, 0}, {ReasonTimeout, 1, 0}, {ReasonTimeout, 2 * time.Hour, 0}}, -1, -1, "", 1},
		{"model_not_found ignored", Cooldowns{}, []step{{ReasonModelNotFound, 0, 0}}, -1, -1, "", 0},
		{"format ignored", Cooldowns{}, []step{{ReasonFormat, 0, 0}}, -1, -1, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var u store.UsageStats
			var last time.Time
			for _, s := range tc.steps {
				last = t0.Add(s.after)
				ApplyFailure(&u, s.reason, "m", s.retry, last, tc.cfg)
			}
			base := last.UnixMilli()
			wantCool := int64(0)
			if tc.cooldownUntil >= 0 {
				wantCool = base + tc.cooldownUntil
			}
			if u.CooldownUntil != wantCool {
				t.Errorf("cooldownUntil = now%+d ms, want now%+d", u.CooldownUntil-base, wantCool-base)
			}
			wantDis := int64(0)
			switch {
			case tc.disabledFor == DisabledUntilChanged:
				wantDis = DisabledUntilChanged
			case tc.disabledFor >= 0:
				wantDis = base + tc.disabledFor
			}
			if u.DisabledUntil != wantDis || u.DisabledReason != tc.disabledReason {
				t.Errorf("disabled = now%+d ms %q, want now%+d %q", u.DisabledUntil-base, u.DisabledReason, wantDis-base, tc.disabledReason)
			}
			if u.ErrorCount != tc.errorCount {
				t.Errorf("errorCount = %d, want %d", u.ErrorCount, tc.errorCount)
			}
		})
	}
}

func TestApplySuccessClears(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := store.UsageStats{CooldownUntil: 1, CooldownModel: "m", DisabledUntil: 2, DisabledReason: "billing", ErrorCount: 3, FailureCounts: map[string]int{"billing": 3}}
	ApplySuccess(&u, now)
	if u.LastUsed != now.UnixMilli() || u.FailureCounts != nil || u.ErrorCount != 0 || u.CooldownUntil != 0 || u.CooldownModel != "" || u.DisabledUntil != 0 || u.DisabledReason != "" {
		t.Errorf("after success: %+v", u)
	}
	// After a success the billing backoff starts again from 5 h.
	ApplyFailure(&u, ReasonBilling, "m", 0, now, Cooldowns{})
	if u.DisabledUntil != now.Add(5*time.Hour).UnixMilli() {
		t.Errorf("billing after success: %d", u.DisabledUntil-now.UnixMilli())
	}
}

func TestBuiltinClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		status   int
		header   http.Header
		body     string
		failover bool
		reason   string
		retryMs  int64
	}{
		{429, http.Header{"Retry-After": {"12"}}, `{}`, true, ReasonRateLimit, 12_000},
		{429, http.Header{"Retry-After-Ms": {"1500"}}, `{}`, true, ReasonRateLimit, 1500},
		{429, http.Header{"Retry-After": {now.Add(time.Minute).Format(http.TimeFormat)}}, `{}`, true, ReasonRateLimit, 60_000},
		{401, nil, `invalid x-api-key`, true, ReasonAuth, -1},
		{403, nil, `forbidden`, true, ReasonAuth, -1},
		{402, nil, `{}`, true, ReasonBilling, -1},
		{400, nil, `Your credit balance is too low`, true, ReasonBilling, -1},
		{400, nil, `This credential is only authorized for use with Claude Code and cannot be used for other API requests.`, false, ReasonFormat, -1}, // provider knowledge: see TestClassifyScope
		{404, nil, `{"error":{"message":"model: nope"}}`, true, ReasonModelNotFound, -1},
		{404, nil, `not here`, false, "", -1},
		{500, nil, ``, true, ReasonTimeout, -1},
		{529, nil, `Overloaded`, true, ReasonRateLimit, -1},
		{502, nil, `bad gateway`, true, ReasonTimeout, -1},
		{503, nil, `overloaded`, true, ReasonRateLimit, -1},
		{504, nil, ``, true, ReasonTimeout, -1},
		{400, nil, `max_tokens: field required`, false, ReasonFormat, -1},
		{200, nil, ``, false, "", -1},
	}
	for _, tc := range cases {
		h := tc.header
		if h == nil {
			h = http.Header{}
		}
		c := BuiltinClassify(tc.status, h, tc.body, now)
		got := int64(-1)
		if c.RetryAfterMs != nil {
			got = *c.RetryAfterMs
		}
		if c.Failover != tc.failover || c.Reason != tc.reason || got != tc.retryMs {
			t.Errorf("%d %q: failover %v reason %q retry %d; want %v %q %d", tc.status, tc.body, c.Failover, c.Reason, got, tc.failover, tc.reason, tc.retryMs)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"12", "1.5", "-3", "Wed, 21 Oct 2015 07:28:00 GMT", "", "999999999999", "NaN", "Inf"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := RetryAfter(http.Header{"Retry-After": {v}}, now)
		if ok && (d < 0 || d > 24*time.Hour) {
			t.Errorf("RetryAfter(%q) = %v", v, d)
		}
	})
}

func TestPresentedToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		h    http.Header
		want string
	}{
		{http.Header{"X-Opensoul-Token": {"a"}, "X-Api-Key": {"b"}}, "a"},
		{http.Header{"X-Api-Key": {"b"}, "Authorization": {"Bearer c"}}, "b"},
		{http.Header{"Authorization": {"bearer  c "}}, "c"},
		{http.Header{"Authorization": {"Basic c"}}, ""},
		{http.Header{}, ""},
	}
	for _, tc := range cases {
		if got := presentedToken(tc.h); got != tc.want {
			t.Errorf("presentedToken(%v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestRewriteModel(t *testing.T) {
	t.Parallel()
	out, err := rewriteModel([]byte(`{"model":"a","stream":true,"messages":[{"role":"user","content":"x"}]}`), "b")
	if err != nil {
		t.Fatal(err)
	}
	if m, s := bodyMeta(out); m != "b" || !s {
		t.Errorf("rewritten: %s", out)
	}
}

func TestSplitRoute(t *testing.T) {
	t.Parallel()
	cases := []struct {
		path, provider, rest string
		ok                   bool
	}{
		{"/anthropic/v1/messages", "anthropic", "/v1/messages", true},
		{"/openai/v1/chat/completions", "openai", "/v1/chat/completions", true},
		{"/openai", "openai", "/", true},
		{"/", "", "/", false},
		{"/anthropic/../openai/v1", "anthropic", "/../openai/v1", false},
		{"/anthropic/v1/%2e%2e/x", "anthropic", "/v1/%2e%2e/x", false},
		{"/anthropic/./v1", "anthropic", "/./v1", false},
		{"/anthropic/v1/a%2Fb", "anthropic", "/v1/a%2Fb", true},
	}
	for _, tc := range cases {
		p, r, ok := splitRoute(tc.path)
		if p != tc.provider || r != tc.rest || ok != tc.ok {
			t.Errorf("splitRoute(%q) = %q %q %v, want %q %q %v", tc.path, p, r, ok, tc.provider, tc.rest, tc.ok)
		}
	}
}

func FuzzSplitRoute(f *testing.F) {
	for _, s := range []string{"/anthropic/v1/messages", "/a/../b", "/a/%2e%2e/b", "//x", "/a/b%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		_, rest, ok := splitRoute(path)
		if !ok {
			return
		}
		plain, err := url.PathUnescape(rest)
		if err != nil || strings.Contains("/"+plain+"/", "/../") {
			t.Errorf("splitRoute(%q) accepted %q", path, rest)
		}
	})
}

func FuzzPresentedToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic x", "", "Bearer"} {
		f.Add(s, "key")
	}
	f.Fuzz(func(t *testing.T, authz, key string) {
		h := http.Header{}
		h.Set("Authorization", authz)
		if got := presentedToken(h); got != "" && !strings.Contains(authz, got) {
			t.Errorf("token %q not from %q", got, authz)
		}
		h.Set("X-Api-Key", key)
		if got := presentedToken(h); key != "" && got != h.Get("X-Api-Key") {
			t.Errorf("x-api-key ignored: %q", got)
		}
	})
}

func TestExhaustedStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	cases := []struct {
		name     string
		attempts []Attempt
		cooling  []Attempt
		code     int
		retry    time.Duration
		final    bool // x-should-retry: false
	}{
		{"rate limit then auth", []Attempt{{Profile: "p:a", Reason: ReasonRateLimit, Recovery: in(30 * time.Second)}, {Profile: "p:b", Reason: ReasonAuth, Recovery: DisabledUntilChanged}}, nil, 429, 30 * time.Second, false},
		{"auth then billing", []Attempt{{Profile: "p:a", Reason: ReasonAuth, Recovery: DisabledUntilChanged}, {Profile: "p:b", Reason: ReasonBilling, Recovery: in(5 * time.Hour)}}, nil, 402, 0, true},
		{"one 5xx", []Attempt{{Profile: "p:a", Reason: ReasonTimeout, Status: 500}}, nil, 502, 0, false},
		{"connection refused", []Attempt{{Profile: "p:a", Reason: ReasonTimeout, Hint: "dial tcp: connection refused"}}, nil, 502, 0, false},
		{"timed out", []Attempt{{Profile: "p:a", Reason: ReasonTimeout, Hint: timedOutHint}}, nil, 504, 0, false},
		{"all cooling", nil, []Attempt{{Profile: "p:a", Reason: ReasonCooldown, Recovery: in(20 * time.Second)}, {Profile: "p:b", Reason: ReasonCooldown, Recovery: in(90 * time.Second)}}, 429, 20 * time.Second, false},
		{"cooling beyond the bound", nil, []Attempt{{Profile: "p:a", Reason: ReasonCooldown, Recovery: in(90 * time.Second)}}, 429, 0, true},
		{"rate limited beyond the bound", []Attempt{{Profile: "p:a", Reason: ReasonRateLimit, Status: 429, Recovery: in(10 * time.Minute)}}, nil, 429, 0, true},
		{"billing, first request", []Attempt{{Profile: "p:a", Reason: ReasonBilling, Status: 402, Recovery: in(5 * time.Hour)}}, nil, 402, 0, true},
		{"billing, later requests", nil, []Attempt{{Profile: "p:a", Reason: ReasonBilling, Recovery: in(5 * time.Hour)}}, 402, 0, true},
		{"auth, first request", []Attempt{{Profile: "p:a", Reason: ReasonAuth, Status: 401, Recovery: DisabledUntilChanged}}, nil, 503, 0, true},
		{"auth, later requests", nil, []Attempt{{Profile: "p:a", Reason: ReasonAuth, Recovery: DisabledUntilChanged}}, 503, 0, true},
		{"scope", []Attempt{{Profile: "p:a", Reason: ReasonCredentialScope, Recovery: DisabledUntilChanged, Hint: "use an API key"}}, nil, 403, 0, true},
	}
	for _, tc := range cases {
		e := exhausted("p", "m", tc.attempts, tc.cooling, now, time.Minute)
		if e.Code != tc.code || e.RetryAfter != tc.retry || e.NoRetry != tc.final {
			t.Errorf("%s: %d Retry-After %v final %v, want %d %v %v (%s)", tc.name, e.Code, e.RetryAfter, e.NoRetry, tc.code, tc.retry, tc.final, e.Msg)
		}
		for _, a := range slices.Concat(tc.attempts, tc.cooling) {
			if !strings.Contains(e.Msg, a.Profile+": "+a.Reason) {
				t.Errorf("%s: message lacks %s: %s", tc.name, a.Profile, e.Msg)
			}
		}
	}
}

// TestExhaustedMessageBounded: a long fallback chain over many profiles
// and a long upstream text still give a message of bounded length that
// says how many attempts it left out.
func TestExhaustedMessageBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var attempts []Attempt
	for m := range 5 {
		for p := range 6 {
			attempts = append(attempts, Attempt{Profile: fmt.Sprintf("p:%d", p), Model: fmt.Sprintf("m%d", m), Reason: ReasonTimeout, Status: 500, Hint: strings.Repeat("é", 1000)})
		}
	}
	e := exhausted("p", "m0", attempts, nil, now, time.Minute)
	if !strings.Contains(e.Msg, "; and 18 more") || !strings.Contains(e.Msg, "model m0: p:0: ") || !strings.Contains(e.Msg, ". model m1: p:0: ") {
		t.Errorf("message: %s", e.Msg)
	}
	if n := len(e.Msg); n > maxListedAttempts*(maxHintLen+100) || !utf8.ValidString(e.Msg) {
		t.Errorf("message of %d bytes (valid UTF-8 %v)", n, utf8.ValidString(e.Msg))
	}
	// One model, the one asked for: no model prefix.
	e = exhausted("p", "m", []Attempt{{Profile: "p:a", Model: "m", Reason: ReasonAuth}}, nil, now, time.Minute)
	if strings.Contains(e.Msg, "model m:") || !strings.Contains(e.Msg, "serve m: p:a: auth") {
		t.Errorf("single model: %s", e.Msg)
	}
}
