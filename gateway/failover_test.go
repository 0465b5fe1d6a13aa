package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

const (
	rateLimited     = `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`
	invalidKey      = `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`
	lowCredit       = `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`
	claudeCodeOnly  = `{"type":"error","error":{"type":"invalid_request_error","message":"This credential is only authorized for use with Claude Code and cannot be used for other API requests."}}`
	modelNotFound   = `{"type":"error","error":{"type":"not_found_error","message":"model: claude-gone"}}`
	badRequestField = `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}`
)

// anthropicError decodes the gateway's Anthropic-shaped error.
func anthropicError(t *testing.T, body string) (typ, msg string) {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Type != "error" {
		t.Fatalf("not an Anthropic error: %s", body)
	}
	return e.Error.Type, e.Error.Message
}

func twoKeys(f *fixture) {
	f.profiles("main", map[string]store.Credential{
		"anthropic:a": anthropicKey(keyA),
		"anthropic:b": anthropicKey(keyB),
	}, map[string][]string{"anthropic": {"anthropic:a", "anthropic:b"}})
}

// rotatingKeys gives main two anthropic keys in no order (the policy
// serves them in turn), both answering.
func rotatingKeys(f *fixture) {
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA), "anthropic:b": anthropicKey(keyB)}, nil)
	f.anthropic.set(keyA, answer{})
	f.anthropic.set(keyB, answer{})
}

// TestFailoverReasons: each failure of the first profile moves the request
// to the second and leaves the first with DESIGN §4's cooldown.
func TestFailoverReasons(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixMilli()
	cases := []struct {
		name   string
		a      answer
		check  func(t *testing.T, u *store.UsageStats)
		reason string
	}{
		{"429 Retry-After", answer{status: 429, body: rateLimited, header: map[string]string{"retry-after": "42"}}, func(t *testing.T, u *store.UsageStats) {
			if u.CooldownUntil != now+42_000 || u.CooldownModel != "claude-sonnet-5" {
				t.Errorf("cooldown = %d %q, want now+42s for the model", u.CooldownUntil-now, u.CooldownModel)
			}
		}, "rate_limit"},
		{"429 bare", answer{status: 429, body: rateLimited}, func(t *testing.T, u *store.UsageStats) {
			if u.CooldownUntil != now+30_000 {
				t.Errorf("cooldown = %d ms, want 30 s", u.CooldownUntil-now)
			}
		}, "rate_limit"},
		{"401", answer{status: 401, body: invalidKey}, func(t *testing.T, u *store.UsageStats) {
			if u.DisabledUntil != gateway.DisabledUntilChanged || u.DisabledReason != "auth" {
				t.Errorf("disabled = %d %q, want until changed (auth)", u.DisabledUntil, u.DisabledReason)
			}
		}, "auth"},
		{"402", answer{status: 402, body: `{"type":"error","error":{"type":"billing_error","message":"payment required"}}`}, func(t *testing.T, u *store.UsageStats) {
			if u.DisabledUntil != now+5*3600_000 || u.DisabledReason != "billing" {
				t.Errorf("disabled = %d ms %q, want 5 h billing", u.DisabledUntil-now, u.DisabledReason)
			}
		}, "billing"},
		{"credit balance", answer{status: 400, body: lowCredit}, func(t *testing.T, u *store.UsageStats) {
			if u.DisabledReason != "billing" {
				t.Errorf("disabledReason = %q, want billing", u.DisabledReason)
			}
		}, "billing"},
		{"Claude Code only", answer{status: 400, body: claudeCodeOnly}, func(t *testing.T, u *store.UsageStats) {
			// Asked by a client that is not Claude Code: scoped, not disabled.
			if u.DisabledUntil != 0 || u.DisabledReason != "" || u.Scope != "claude-code" {
				t.Errorf("disabled = %d %q, scope %q; want scoped to claude-code, not disabled", u.DisabledUntil, u.DisabledReason, u.Scope)
			}
		}, "credential_scope"},
		{"500 once", answer{status: 500, body: `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`}, func(t *testing.T, u *store.UsageStats) {
			if u.CooldownUntil != 0 || u.DisabledUntil != 0 || u.ErrorCount != 1 {
				t.Errorf("one 5xx must not cool: %+v", u)
			}
		}, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			twoKeys(f)
			f.anthropic.set(keyA, tc.a)
			f.anthropic.set(keyB, answer{})
			resp, body := f.messages("claude-sonnet-5", nil)
			if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:b" || resp.Header.Get("x-opensoul-attempts") != "2" {
				t.Fatalf("status %d profile %q attempts %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), resp.Header.Get("x-opensoul-attempts"), body)
			}
			st := f.state("main")
			u := st.UsageStats["anthropic:a"]
			if u == nil || u.FailureCounts[tc.reason] != 1 {
				t.Fatalf("anthropic:a stats = %+v, want one %s", u, tc.reason)
			}
			tc.check(t, u)
			if want := anthropicKey(keyA).Tag(); u.SecretTag != want || want == "" {
				t.Errorf("secretTag = %q, want %q (the failing key's)", u.SecretTag, want)
			}
			if st.LastGood["anthropic"] != "anthropic:b" || st.UsageStats["anthropic:b"].LastUsed != now {
				t.Errorf("lastGood = %v, b = %+v", st.LastGood, st.UsageStats["anthropic:b"])
			}
			// The log line is written after the answer is sent.
			waitFor(t, "the request log line with the reasons", func() bool {
				return strings.Contains(f.logs.String(), `"reasons":"anthropic:a=`+tc.reason+` anthropic:b=ok"`)
			})
		})
	}
}

// TestFormatErrorPassesThrough: a 400 is the caller's mistake: no failover,
// the provider's own answer.
func TestFormatErrorPassesThrough(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	twoKeys(f)
	f.anthropic.set(keyA, answer{status: 400, body: badRequestField})
	f.anthropic.set(keyB, answer{})
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 400 || body != badRequestField || len(f.anthropic.requests()) != 1 {
		t.Errorf("status %d body %s after %d upstream calls", resp.StatusCode, body, len(f.anthropic.requests()))
	}
}

func TestAllCooling(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	twoKeys(f)
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited, header: map[string]string{"retry-after": "30"}})
	f.anthropic.set(keyB, answer{status: 429, body: rateLimited, header: map[string]string{"retry-after": "90"}})

	resp, body := f.messages("claude-sonnet-5", nil)
	typ, msg := anthropicError(t, body)
	if resp.StatusCode != 429 || typ != "rate_limit_error" || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("first: %d %s Retry-After %q", resp.StatusCode, typ, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(msg, "anthropic:a: rate_limit") || !strings.Contains(msg, "anthropic:b: rate_limit") || !strings.Contains(msg, "Earliest recovery in 30s") {
		t.Errorf("message: %s", msg)
	}

	// Now both are cooling: nothing is sent upstream.
	f.clock.Advance(10 * time.Second)
	resp, body = f.messages("claude-sonnet-5", nil)
	_, msg = anthropicError(t, body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "20" || resp.Header.Get("x-opensoul-attempts") != "0" {
		t.Errorf("second: %d Retry-After %q attempts %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("x-opensoul-attempts"))
	}
	if n := len(f.anthropic.requests()); n != 2 {
		t.Errorf("upstream called %d times, want 2 (cooling profiles are not retried)", n)
	}
	if !strings.Contains(msg, "not tried") {
		t.Errorf("message: %s", msg)
	}

	// The cooldown is scoped to the model: another model is served.
	f.anthropic.set(keyA, answer{})
	resp, _ = f.messages("claude-haiku-5", nil)
	if resp.StatusCode != 200 {
		t.Errorf("other model: %d", resp.StatusCode)
	}

	// After the cooldown, a is tried again.
	f.clock.Advance(21 * time.Second)
	resp, _ = f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:a" {
		t.Errorf("after cooldown: %d %q", resp.StatusCode, resp.Header.Get("x-opensoul-profile"))
	}
}

func TestCredentialScopeHint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{
		"anthropic:manual": {Type: store.TypeToken, Provider: "anthropic", Token: tokenC},
	}, nil)
	f.anthropic.set(tokenC, answer{status: 400, body: claudeCodeOnly})
	resp, body := f.messages("claude-sonnet-5", nil)
	typ, msg := anthropicError(t, body)
	if resp.StatusCode != 403 || typ != "permission_error" || !strings.Contains(msg, "other clients need an Anthropic API key") || !strings.Contains(msg, "kept for claude-code requests only") {
		t.Errorf("%d %s: %s", resp.StatusCode, typ, msg)
	}
	// Replacing the credential lifts the disable.
	f.profiles("main", map[string]store.Credential{"anthropic:manual": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	waitFor(t, "the new credential to be used", func() bool {
		resp, _ := f.messages("claude-sonnet-5", nil)
		return resp.StatusCode == 200
	})
}

// TestStrictUserPin: a user pin never switches credential.
func TestStrictUserPin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	twoKeys(f)
	f.st.UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["s1"] = &store.Session{AuthProfileOverride: "anthropic:b", AuthProfileOverrideSource: store.PinUser}
		return nil
	})
	f.anthropic.set(keyA, answer{})
	f.anthropic.set(keyB, answer{status: 429, body: rateLimited})
	resp, body := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "s1"})
	if resp.StatusCode != 429 {
		t.Fatalf("pinned request: %d %s", resp.StatusCode, body)
	}
	if got := f.anthropic.secrets(); len(got) != 1 || got[0] != keyB {
		t.Errorf("upstream saw %d requests; a pinned failure must not fail over", len(got))
	}
	// Still cooling: fails without calling anyone.
	resp, body = f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "s1"})
	if resp.StatusCode != 429 || len(f.anthropic.requests()) != 1 {
		t.Errorf("second pinned request: %d after %d upstream calls", resp.StatusCode, len(f.anthropic.requests()))
	}
	// The failure names the pin, the session and the way out.
	if _, msg := anthropicError(t, body); !strings.Contains(msg, "Session s1 is pinned to anthropic:b") || !strings.Contains(msg, "/model default") {
		t.Errorf("a strict pin's failure does not name the pin and /model default: %s", msg)
	}
	// A pin to a profile that was removed fails instead of switching.
	f.st.UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["gone"] = &store.Session{AuthProfileOverride: "anthropic:removed", AuthProfileOverrideSource: store.PinUser}
		return nil
	})
	f.gw.Refresh("main")
	resp, body = f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "gone"})
	if _, msg := anthropicError(t, body); resp.StatusCode != 503 || !strings.Contains(msg, "pinned to anthropic:removed") {
		t.Errorf("pin to a removed profile: %d %s", resp.StatusCode, msg)
	}
	// Another session is not pinned.
	resp, _ = f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "s2"})
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:a" {
		t.Errorf("unpinned session: %d %q", resp.StatusCode, resp.Header.Get("x-opensoul-profile"))
	}
}

// TestModelFallback: when every profile fails for the model, the
// configured fallbacks of the same provider are tried by rewriting model.
func TestModelFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.Fallbacks = []string{"openai/gpt-5-mini", "anthropic/claude-haiku-5", "anthropic/claude-gone"}
	}))
	twoKeys(f)
	only := map[string]bool{"claude-haiku-5": true}
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited, models: only})
	f.anthropic.set(keyB, answer{status: 429, body: rateLimited, models: only})
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"model":"claude-haiku-5"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var models []string
	for _, r := range f.anthropic.requests() {
		models = append(models, r.model)
	}
	if got := strings.Join(models, ","); got != "claude-sonnet-5,claude-sonnet-5,claude-haiku-5" {
		t.Errorf("models tried: %s", got)
	}

	// model_not_found moves to the next model, not the next profile.
	f2 := newFixture(t, withConfig(func(c *gateway.Config) { c.Fallbacks = []string{"anthropic/claude-haiku-5"} }))
	twoKeys(f2)
	f2.anthropic.set(keyA, answer{status: 404, body: modelNotFound, models: only})
	f2.anthropic.set(keyB, answer{})
	resp, body = f2.messages("claude-gone", nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:a" || !strings.Contains(body, "claude-haiku-5") {
		t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body)
	}
	f2.Flush()
	if st, _ := f2.st.LoadState("main"); st.UsageStats["anthropic:a"] != nil && st.UsageStats["anthropic:a"].ErrorCount != 0 {
		t.Errorf("model_not_found counted against the profile: %+v", st.UsageStats["anthropic:a"])
	}
}

// TestFallbackExhaustedMessage: when every model of a fallback chain
// fails, the error groups the attempts under the model they were tried
// on, so each profile reads once per model with the model named.
func TestFallbackExhaustedMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.Fallbacks = []string{"anthropic/claude-haiku-5"} }))
	twoKeys(f)
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited})
	f.anthropic.set(keyB, answer{status: 429, body: rateLimited})
	resp, body := f.messages("claude-sonnet-5", nil)
	_, msg := anthropicError(t, body)
	if resp.StatusCode != 429 {
		t.Fatalf("%d %s", resp.StatusCode, msg)
	}
	sonnet, haiku := strings.Index(msg, "model claude-sonnet-5: anthropic:"), strings.Index(msg, "model claude-haiku-5: anthropic:")
	if sonnet < 0 || haiku < sonnet {
		t.Fatalf("attempts not grouped by model: %s", msg)
	}
	for _, group := range []string{msg[sonnet:haiku], msg[haiku:]} {
		if strings.Count(group, "anthropic:a: ") != 1 || strings.Count(group, "anthropic:b: ") != 1 {
			t.Errorf("each profile once per model, got %q in %s", group, msg)
		}
	}
}

func (f *fixture) Flush() { f.gw.Flush() }

func TestNoCredential(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp, body := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-agent": "work"})
	typ, msg := anthropicError(t, body)
	if resp.StatusCode != 503 || !strings.Contains(msg, "opensoul models auth paste-token --provider anthropic --agent work") ||
		!strings.Contains(msg, f.st.ProfilesPath("work")) || typ == "" {
		t.Errorf("%d %s: %s", resp.StatusCode, typ, msg)
	}
	// OpenAI shape for OpenAI.
	resp, body = f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-5","messages":[]}`, map[string]string{"Authorization": "Bearer " + gatewayToken})
	var e struct {
		Error struct{ Message, Type, Code string } `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) != nil || resp.StatusCode != 503 || !strings.Contains(e.Error.Message, "--provider openai") || e.Error.Code == "" {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

// TestModuleCheck: a profile the provider module rejects is not used, and
// the error says why.
func TestModuleCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{
		"anthropic:cut": {Type: store.TypeToken, Provider: "anthropic", Token: "sk-ant-oat01-cut-at-the-wrap"},
	}, nil)
	f.anthropic.set("sk-ant-oat01-cut-at-the-wrap", answer{})
	resp, body := f.messages("claude-sonnet-5", nil)
	_, msg := anthropicError(t, body)
	if resp.StatusCode != 503 || !strings.Contains(msg, "anthropic:cut: not usable: the credential is invalid") || len(f.anthropic.requests()) != 0 {
		t.Errorf("%d: %s", resp.StatusCode, msg)
	}
	f.profiles("main", map[string]store.Credential{"anthropic:key": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	waitFor(t, "the valid key", func() bool {
		resp, _ := f.messages("claude-sonnet-5", nil)
		return resp.Header.Get("x-opensoul-profile") == "anthropic:key"
	})
}

func TestEnvAndConfigFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withEnv(gateway.Env{"ANTHROPIC_API_KEY": {Name: "ANTHROPIC_API_KEY", Value: envKey, Source: "process"}}),
		withConfig(func(c *gateway.Config) {
			c.Providers["openai"] = gateway.Upstream{BaseURL: c.Providers["openai"].BaseURL, APIKey: openaiKey}
		}))
	f.anthropic.set(envKey, answer{})
	f.openai.set(openaiKey, answer{})
	resp, _ := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "env:ANTHROPIC_API_KEY" {
		t.Errorf("env: %d %q", resp.StatusCode, resp.Header.Get("x-opensoul-profile"))
	}
	resp, _ = f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-5","messages":[]}`, map[string]string{"Authorization": "Bearer " + gatewayToken})
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "config:providers.openai.apiKey" {
		t.Errorf("config: %d %q", resp.StatusCode, resp.Header.Get("x-opensoul-profile"))
	}
}

func TestGatewayAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	body := `{"model":"m","max_tokens":1,"messages":[]}`
	cases := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"none", nil, 401},
		{"wrong", map[string]string{"x-api-key": "nope"}, 401},
		{"x-api-key", map[string]string{"x-api-key": gatewayToken}, 200},
		{"bearer", map[string]string{"Authorization": "Bearer " + gatewayToken}, 200},
		{"x-opensoul-token", map[string]string{"x-opensoul-token": gatewayToken}, 200},
		{"agent token, own agent", map[string]string{"x-api-key": workToken, "x-opensoul-agent": "work"}, 200},
		{"agent token, no agent header", map[string]string{"x-api-key": workToken}, 200},
		{"agent token, other agent", map[string]string{"x-api-key": workToken, "x-opensoul-agent": "main"}, 403},
		{"bad agent id", map[string]string{"x-api-key": gatewayToken, "x-opensoul-agent": "../x"}, 400},
	}
	for _, tc := range cases {
		resp, got := f.do("POST", "/anthropic/v1/messages", body, tc.header)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d: %s", tc.name, resp.StatusCode, tc.want, got)
		}
	}
	for _, r := range f.anthropic.requests() {
		if r.secret != keyA {
			t.Errorf("upstream saw a gateway token instead of the profile key")
		}
	}
	resp, _ := f.do("POST", "/nowhere/v1/x", body, map[string]string{"x-api-key": gatewayToken})
	if resp.StatusCode != 404 {
		t.Errorf("unknown provider: %d", resp.StatusCode)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.MaxBodyBytes = 100 }))
	resp, body := f.do("POST", "/anthropic/v1/messages", `{"model":"m","pad":"`+strings.Repeat("x", 200)+`"}`, map[string]string{"x-api-key": gatewayToken})
	if typ, _ := anthropicError(t, body); resp.StatusCode != 413 || typ != "request_too_large" {
		t.Errorf("%d %s", resp.StatusCode, typ)
	}
}

// TestLiveChanges: profiles, order and cleared cooldowns written by the
// CLI apply without a restart; auto pins are written to sessions.json.
func TestLiveChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp, _ := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("no profiles yet: %d", resp.StatusCode)
	}
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited})
	f.anthropic.set(keyB, answer{})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	waitFor(t, "the new profile", func() bool {
		resp, _ := f.messages("claude-sonnet-5", nil)
		return resp.StatusCode == 429
	})
	// The CLI clears the cooldown and adds a second profile ahead of it.
	f.gw.Flush()
	f.st.UpdateState("main", func(st *store.State) error {
		delete(st.UsageStats, "anthropic:a")
		return nil
	})
	f.anthropic.set(keyA, answer{})
	f.profiles("main", map[string]store.Credential{"anthropic:b": anthropicKey(keyB)}, map[string][]string{"anthropic": {"anthropic:b", "anthropic:a"}})
	n := 0
	waitFor(t, "the order change", func() bool {
		n++ // a new session each time: an auto pin would outrank the order
		resp, _ := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": fmt.Sprint("fresh", n)})
		return resp.Header.Get("x-opensoul-profile") == "anthropic:b"
	})
	f.st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Order["anthropic"] = []string{"anthropic:a"}
		return nil
	})
	waitFor(t, "the cleared cooldown", func() bool {
		resp, _ := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "other"})
		return resp.Header.Get("x-opensoul-profile") == "anthropic:a"
	})
	f.gw.Flush()
	ss, err := f.st.LoadSessions("main")
	if err != nil {
		t.Fatal(err)
	}
	if s := ss.Sessions["other"]; s == nil || s.AuthProfileOverride != "anthropic:a" || s.AuthProfileOverrideSource != store.PinAuto {
		t.Errorf("auto pin of session other = %+v", s)
	}
}

// TestAutoPinSticks: a session keeps the profile that first served it while
// round-robin would pick another.
func TestAutoPinSticks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rotatingKeys(f)
	first := ""
	for i := range 4 {
		f.clock.Advance(5 * time.Second)
		resp, _ := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "s"})
		if i == 0 {
			first = resp.Header.Get("x-opensoul-profile")
		} else if got := resp.Header.Get("x-opensoul-profile"); got != first {
			t.Errorf("request %d served by %s, session pinned to %s", i, got, first)
		}
	}
	// A different session goes round-robin to the least recently used.
	resp, _ := f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "t"})
	if resp.Header.Get("x-opensoul-profile") == first {
		t.Errorf("new session reused %s instead of the least recently used profile", first)
	}
}

// TestExpiryWithoutStateChange: the profile facts the gateway prepares once
// per snapshot follow the clock. A token that expires while nothing in the
// agent's state changes is no longer used.
func TestExpiryWithoutStateChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	expires := f.clock.Now().Add(time.Hour).UnixMilli()
	// A token of its own: module verdicts are kept on disk across runs, and
	// this one is judged expired at the end.
	token := fmt.Sprintf("%s-%d", tokenC, time.Now().UnixNano())
	f.profiles("main", map[string]store.Credential{
		"anthropic:tok": {Type: store.TypeToken, Provider: "anthropic", Token: token, Expires: expires},
	}, nil)
	f.anthropic.set(token, answer{})
	for range 3 { // the later ones change no state: the snapshot stays
		if resp, body := f.messages("claude-sonnet-5", nil); resp.StatusCode != 200 {
			t.Fatalf("before expiry: %d %s", resp.StatusCode, body)
		}
	}
	f.clock.Advance(2 * time.Hour)
	resp, body := f.messages("claude-sonnet-5", nil)
	_, msg := anthropicError(t, body)
	if resp.StatusCode != 503 || !strings.Contains(msg, "anthropic:tok: not usable") || !strings.Contains(msg, "expired") {
		t.Errorf("after expiry: %d %s", resp.StatusCode, msg)
	}
}

// TestLastGoodUnderRotation: without a session two clean keys take turns,
// and lastGood stays with the one that served first rather than moving
// (and rewriting the agent's state) on every request; it moves when the
// one it names has not served for a second or has failed.
func TestLastGoodUnderRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rotatingKeys(f)
	serve := func() string {
		t.Helper()
		resp, body := f.messages("claude-sonnet-5", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return resp.Header.Get("x-opensoul-profile")
	}
	first := serve()
	if second := serve(); second == first {
		t.Fatalf("both requests went to %s; want the two keys in turn", first)
	}
	if got := f.state("main").LastGood["anthropic"]; got != first {
		t.Fatalf("lastGood = %q after two keys took turns in the same second; want %q, the first", got, first)
	}

	f.clock.Advance(2 * time.Second)
	third := serve()
	if got := f.state("main").LastGood["anthropic"]; got != third {
		t.Fatalf("lastGood = %q; want %q, which served when the other had not for 2 s", got, third)
	}

	// The key lastGood names fails: the other serves and takes it over.
	other := map[string]string{"anthropic:a": keyB, "anthropic:b": keyA}
	failing := map[string]string{"anthropic:a": keyA, "anthropic:b": keyB}[third]
	f.anthropic.set(failing, answer{status: 429, body: rateLimited})
	for range 2 { // whichever the rotation tries first, one request lands on the other
		serve()
	}
	want := map[string]string{keyA: "anthropic:a", keyB: "anthropic:b"}[other[third]]
	if got := f.state("main").LastGood["anthropic"]; got != want {
		t.Fatalf("lastGood = %q after %s failed; want %q", got, third, want)
	}
}
