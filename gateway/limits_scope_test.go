package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// scopedUpstream answers OpenAI Chat and Anthropic Messages with rate-limit
// headers: remaining[key+" "+model] tokens of 10000 left (x-ratelimit-* for
// OpenAI, per model; anthropic-ratelimit-unified-* for Anthropic, the
// login's whole window).
type scopedUpstream struct {
	*httptest.Server
	mu        sync.Mutex
	remaining map[string]int
	served    []string // key+" "+model of every answered request
}

func newScopedUpstream(t *testing.T) *scopedUpstream {
	u := &scopedUpstream{remaining: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
		key := r.Header.Get("x-api-key")
		if key == "" && len(r.Header.Get("authorization")) > 7 {
			key = r.Header.Get("authorization")[7:]
		}
		u.mu.Lock()
		left, ok := u.remaining[key+" "+req.Model]
		if ok {
			u.served = append(u.served, key+" "+req.Model)
		}
		u.mu.Unlock()
		if !ok {
			writeJSON(w, 401, `{"error":{"type":"invalid_request_error","message":"no such key"}}`, nil)
			return
		}
		if r.Header.Get("x-api-key") != "" { // Anthropic: a subscription's window, no model in it
			writeJSON(w, 200, fmt.Sprintf(`{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`, req.Model),
				map[string]string{"anthropic-ratelimit-unified-status": "allowed", "anthropic-ratelimit-unified-5h-utilization": fmt.Sprint(1 - float64(left)/10000)})
			return
		}
		writeJSON(w, 200, fmt.Sprintf(`{"id":"c","object":"chat.completion","created":1,"model":%q,"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, req.Model),
			map[string]string{"x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": fmt.Sprint(left), "x-ratelimit-reset-tokens": "1m0s"})
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *scopedUpstream) set(key, model string, left int) {
	u.mu.Lock()
	u.remaining[key+" "+model] = left
	u.mu.Unlock()
}

// scopedFixture is a gateway whose providers are u, recording the policy's
// inputs.
func scopedFixture(t *testing.T, u *scopedUpstream) (*fixture, func() *policy.Input) {
	var rec *recorder
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		rec = &recorder{Selector: o.Selector}
		o.Selector = rec
		o.Config.Providers["openai"] = gateway.Upstream{BaseURL: u.URL}
		o.Config.Providers["anthropic"] = gateway.Upstream{BaseURL: u.URL}
	})
	return f, func() *policy.Input {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.ins[len(rec.ins)-1]
	}
}

// chat sends one Chat Completions request as token's agent and returns the
// policy input it was decided with, after the clock moved past the
// observe gate (every answer is read).
func chat(t *testing.T, f *fixture, last func() *policy.Input, token, model string) *policy.Input {
	t.Helper()
	f.clock.Advance(time.Second)
	resp, body := f.do("POST", "/openai/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"authorization": "Bearer " + token})
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", model, resp.StatusCode, body)
	}
	return last()
}

func headroomOf(in *policy.Input, id string) string {
	for _, p := range in.ProfileFacts() {
		if p.ID == id {
			if p.Limits == nil {
				return "unknown"
			}
			return fmt.Sprint(p.Limits.Headroom)
		}
	}
	return "absent"
}

// sees sends one request for model as token's agent and checks the
// headroom its policy input showed for profile id.
func sees(t *testing.T, f *fixture, last func() *policy.Input, token, model, id, want string) {
	t.Helper()
	if h := headroomOf(chat(t, f, last, token, model), id); h != want {
		t.Errorf("a request for %s sees %s's headroom %s, want %s", model, id, h, want)
	}
}

// TestLimitsPerModel: OpenAI keeps an API key's limits per model, and the
// openai module says so; two models on one key with different remaining
// each show the policy their own headroom. (Keyed by profile alone, the
// last answer's headroom was every model's.)
func TestLimitsPerModel(t *testing.T) {
	t.Parallel()
	u := newScopedUpstream(t)
	u.set(openaiKey, "gpt-big", 9500)
	u.set(openaiKey, "gpt-small", 2500)
	f, last := scopedFixture(t, u)
	f.profiles("main", map[string]store.Credential{"openai:k": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey}}, nil)

	sees(t, f, last, gatewayToken, "gpt-big", "openai:k", "unknown") // before any answer
	chat(t, f, last, gatewayToken, "gpt-small")                      // observed: small 0.2, big 0.9
	for range 2 {
		sees(t, f, last, gatewayToken, "gpt-big", "openai:k", "0.9")
		sees(t, f, last, gatewayToken, "gpt-small", "openai:k", "0.2")
	}
}

// TestLimitsPerAgent: an agent's own profile and main's with the same id
// are two keys; each agent's policy sees its own key's headroom.
func TestLimitsPerAgent(t *testing.T) {
	t.Parallel()
	u := newScopedUpstream(t)
	u.set(openaiKey, "gpt-5", 1500)
	u.set(openaiKey2, "gpt-5", 8500)
	f, last := scopedFixture(t, u)
	f.profiles("main", map[string]store.Credential{"openai:default": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey}}, nil)
	f.profiles("work", map[string]store.Credential{"openai:default": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey2}}, nil)

	chat(t, f, last, gatewayToken, "gpt-5")
	chat(t, f, last, workToken, "gpt-5")
	for range 2 {
		sees(t, f, last, gatewayToken, "gpt-5", "openai:default", "0.1") // main's key
		sees(t, f, last, workToken, "gpt-5", "openai:default", "0.8")    // work's
	}
}

// TestLimitsWithoutScope: an answer that names no scope (every module
// before ABI revision 6; here a subscription's unified window, which is
// the whole login's) holds for every model of the credential.
func TestLimitsWithoutScope(t *testing.T) {
	t.Parallel()
	u := newScopedUpstream(t)
	u.set(keyA, "claude-a", 3500)
	u.set(keyA, "claude-b", 3000)
	f, last := scopedFixture(t, u)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.clock.Advance(time.Second)
	if resp, body := f.messages("claude-a", nil); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	f.clock.Advance(time.Second)
	f.messages("claude-b", nil)
	if h := headroomOf(last(), "anthropic:a"); h != "0.3" {
		t.Errorf("claude-b sees headroom %s, want the login's 0.3 observed on claude-a", h)
	}
}

// TestPolicyPicksPerModelHeadroom: two OpenAI keys, each nearly spent on
// one model and fresh on the other. Once both keys were seen on both
// models, the built-in policy sends each model to the key with headroom
// for it. (With limits keyed by profile, the key's last answer, whatever
// its model, decided for every model.)
func TestPolicyPicksPerModelHeadroom(t *testing.T) {
	t.Parallel()
	u := newScopedUpstream(t)
	u.set(openaiKey, "gpt-a", 1500)
	u.set(openaiKey, "gpt-b", 8500)
	u.set(openaiKey2, "gpt-a", 8500)
	u.set(openaiKey2, "gpt-b", 1500)
	f, last := scopedFixture(t, u)
	f.profiles("main", map[string]store.Credential{
		"openai:one": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
		"openai:two": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey2},
	}, nil)
	// Nothing known yet: the keys take turns, so each is seen on each model.
	for _, m := range []string{"gpt-a", "gpt-a", "gpt-b", "gpt-b"} {
		chat(t, f, last, gatewayToken, m)
	}
	u.mu.Lock()
	u.served = nil
	u.mu.Unlock()
	for range 3 {
		chat(t, f, last, gatewayToken, "gpt-b")
		chat(t, f, last, gatewayToken, "gpt-a")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.served {
		if s != openaiKey2+" gpt-a" && s != openaiKey+" gpt-b" {
			t.Errorf("served %s with the key nearly spent for it", s[len(s)-5:])
		}
	}
}
