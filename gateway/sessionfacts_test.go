package gateway_test

import (
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// TestSessionAndAgentFacts: the policy sees the agent's config attributes,
// and for a named session the client that opened it, when it started
// (the stored createdAt when earlier than this gateway's first sight) and
// its request count in power-of-two steps; a request without a session
// gets none of the session facts.
func TestSessionAndAgentFacts(t *testing.T) {
	t.Parallel()
	var rec *recorder
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		rec = &recorder{Selector: o.Selector}
		o.Selector = rec
		o.Config.AgentAttrs = map[string]map[string]string{"main": {"purpose": "batch", "team": "infra"}}
	})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	last := func() *policy.Input {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.ins[len(rec.ins)-1]
	}
	send := func(session, ua string) *policy.Input {
		t.Helper()
		h := map[string]string{"user-agent": ua}
		if session != "" {
			h["x-opensoul-session"] = session
		}
		if resp, body := f.messages("claude-sonnet-5", h); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		return last()
	}
	opened := f.clock.Now().UnixMilli()
	claude := policy.ClientFacts{Name: "claude-code", Version: "2.1.332"}
	for i, want := range []int64{1, 2, 2, 4, 4, 4, 4, 8} {
		ua := "curl/8.5.0" // later requests of the session come from another client
		if i == 0 {
			ua = "claude-cli/2.1.332 (external, cli)"
		}
		in := send("s1", ua)
		if in.Session.Requests != want || in.Session.Client != claude || in.Session.Started != opened {
			t.Errorf("request %d of s1: session facts %+v, want client %v, started %d, requests %d", i+1, in.Session, claude, opened, want)
		}
		if in.Agent.Attrs["purpose"] != "batch" || in.Agent.Attrs["team"] != "infra" {
			t.Errorf("input.agent.attrs = %v", in.Agent.Attrs)
		}
		f.clock.Advance(time.Second)
	}

	stored := opened - time.Hour.Milliseconds()
	f.st.UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["s2"] = &store.Session{CreatedAt: stored, UpdatedAt: stored}
		return nil
	})
	waitFor(t, "the gateway to see s2", func() bool {
		return send("s2", "codex_exec/0.171.0").Session.Started == stored
	})
	if in := send("", "curl/8.5.0"); in.Session.Client != (policy.ClientFacts{}) || in.Session.Started != 0 || in.Session.Requests != 0 {
		t.Errorf("a request without a session has session facts %+v", in.Session)
	}
}
