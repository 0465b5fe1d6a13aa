package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// TestUsagePerOwner: main and work each have their own
// "anthropic:default" (two keys), ops has none and uses main's. With the
// "$20 a day on a metered key" example loaded, main's key spends $21 in
// 7 answers. Work's key spent cents: it keeps serving work (keyed by the
// profile id alone, work's key carried main's $21 and was refused). Ops
// uses main's key, so main's spend caps it for ops too. The usage facts,
// the stored rows and /metrics give each credential its own totals, and
// each agent its own requests.
func TestUsagePerOwner(t *testing.T) {
	t.Parallel()
	const id = "anthropic:default"
	f, st := dailyCapGateway(t, map[string]store.Credential{id: anthropicKey(keyA)}, []string{id})
	f.profiles("work", map[string]store.Credential{id: anthropicKey(keyB)}, nil)
	f.anthropic.set(keyB, answer{}) // 3 input and 1 output tokens
	// ops's own profiles hold only an OpenAI key: its Anthropic one is main's.
	f.profiles("ops", map[string]store.Credential{"openai:default": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey}}, nil)
	send := func(agent string, header map[string]string, n int64) (int, string) {
		t.Helper()
		resp, body := f.messages("claude-sonnet-5", header)
		waitFor(t, agent+"'s answer recorded", func() bool { return st.Facts().Agent(agent).H1.Requests >= n || resp.StatusCode != 200 })
		return resp.StatusCode, body
	}
	for i := range 7 { // $3 each on main's key
		if status, body := send("main", nil, int64(i+1)); status != 200 {
			t.Fatalf("main's request %d: %d %s", i+1, status, body)
		}
	}
	work := map[string]string{"x-api-key": workToken}
	for i := range 2 {
		if status, body := send("work", work, int64(i+1)); status != 200 {
			t.Fatalf("work's request %d, on its own key that spent cents: %d %s", i+1, status, body)
		}
	}
	if status, body := send("ops", map[string]string{"x-opensoul-agent": "ops"}, 1); status == 200 ||
		!strings.Contains(body, "metered key spent $21 in the last 24 hours") {
		t.Errorf("ops uses main's key, which spent $21: %d %s", status, body)
	}
	bySecret := map[string]int{}
	for _, r := range f.anthropic.requests() {
		bySecret[r.secret]++
	}
	if bySecret[keyA] != 7 || bySecret[keyB] != 2 {
		t.Errorf("main's key served %d, work's %d, want 7 and 2", bySecret[keyA], bySecret[keyB])
	}

	facts := st.Facts()
	mainKey := policy.UsageTotals{Requests: 7, Tokens: 1_400_000, Output: 1_400_000, Cost: 21}
	workKey := policy.UsageTotals{Requests: 2, Tokens: 8, Input: 6, Output: 2}
	for _, c := range []struct {
		name string
		got  *policy.UsageFacts
		want policy.UsageTotals
	}{
		{"main's " + id, facts.Profile("main", id), mainKey},
		{"work's " + id, facts.Profile("work", id), workKey},
		{"agent main", facts.Agent("main"), mainKey},
		{"agent work", facts.Agent("work"), workKey},
		{"agent ops", facts.Agent("ops"), policy.UsageTotals{}},
	} {
		if c.got == nil || c.got.H24 != c.want {
			t.Errorf("%s: 24h %+v, want %+v", c.name, c.got, c.want)
		}
	}

	// What each agent's policy sees (the resolver policy explain uses).
	for agent, want := range map[string]policy.UsageTotals{"main": mainKey, "work": workKey, "ops": mainKey} {
		snap, err := gateway.LoadSnapshot(f.st, agent)
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.gw.Resolver(context.Background(), f.clock.Now()).Resolve(context.Background(), snap,
			gateway.Query{Agent: agent, Provider: "anthropic", Model: "claude-sonnet-5"}, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		var got *policy.UsageFacts
		for _, p := range res.Input.Profiles {
			if p.ID == id {
				got = p.Usage
			}
		}
		if got == nil || got.H24 != want {
			t.Errorf("agent %s's policy input: %s's 24h usage %+v, want %+v", agent, id, got, want)
		}
	}

	// /model status in a chat, as each agent: the cap shows only where
	// the agent uses main's key.
	for _, c := range []struct {
		header map[string]string
		capped bool
	}{{work, false}, {map[string]string{"x-opensoul-agent": "ops"}, true}, {nil, true}} {
		h := map[string]string{"x-api-key": gatewayToken, "anthropic-version": "2023-06-01"}
		for k, v := range c.header {
			h[k] = v
		}
		_, body := f.do("POST", "/anthropic/v1/messages", `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"/model status"}]}`, h)
		if strings.Contains(body, "metered key spent $21") != c.capped || !strings.Contains(body, id) {
			t.Errorf("/model status as %v: capped %v wanted, got:\n%s", c.header, c.capped, body)
		}
	}

	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := st.Totals(context.Background(), usage.Query{})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int64{}
	for _, r := range rows {
		if r.Key == id {
			owners[r.Owner] += r.Requests
		}
	}
	if len(rows) != 2 || owners["main"] != 7 || owners["work"] != 2 {
		t.Errorf("stored by profile: %+v, want %s of main (7) and of work (2)", rows, id)
	}

	_, body := f.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`opensoul_profile_requests_total{owner="main",profile="anthropic:default",provider="anthropic"} 7`,
		`opensoul_profile_requests_total{owner="work",profile="anthropic:default",provider="anthropic"} 2`,
		`opensoul_profile_tokens_total{kind="output",owner="main",profile="anthropic:default",provider="anthropic"} 1.4e+06`,
		`opensoul_profile_tokens_total{kind="output",owner="work",profile="anthropic:default",provider="anthropic"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
