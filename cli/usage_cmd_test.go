package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/usage"
)

// TestUsageCommand: answers served by a running gateway land in the usage
// store (flushed when it stops), and `opensoul usage` shows them by
// profile with their cost, and as JSON.
func TestUsageCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if out := e.ok("", "usage"); !strings.Contains(out, "No usage recorded yet") {
		t.Errorf("before any request: %s", out)
	}
	up := fakeAnthropic(t, nil) // usage: 1 input, 1 output token per answer
	e.writeFile(".env", envGatewayToken+"="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+up.URL+"\n"+
		"usage:\n  prices:\n    m: {input: 1000000, output: 2000000}\n") // $1 and $2 a token, so the cost shows
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	g := startGateway(t, e, "127.0.0.1:0")
	for range 3 {
		if resp, body := g.post(t, "/anthropic/v1/messages", fixGatewayToken, `{"model":"m","max_tokens":1,"messages":[]}`); resp.StatusCode != 200 {
			t.Fatalf("%d %s\n%s", resp.StatusCode, body, g.stderr.String())
		}
	}
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}

	out := e.ok("", "usage")
	for _, want := range []string{"Usage in the last 24h, every agent, by profile", "PROFILE", "REQUESTS", "HEADROOM",
		"anthropic:manual", "$9.00", "TOTAL"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	var rep usageReport
	if err := json.Unmarshal([]byte(e.ok("", "usage", "--by", "model", "--since", "7d", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Key != "m" || rep.Rows[0].Requests != 3 || rep.Rows[0].Input != 3 || rep.Rows[0].Output != 3 ||
		rep.Total.CostUSD != 9 || rep.By != "model" {
		t.Errorf("usage --json: %+v", rep)
	}
	if out := e.ok("", "usage", "--agent", "nobody"); !strings.Contains(out, "No usage in the last 24h for agent nobody") {
		t.Errorf("another agent: %s", out)
	}
	for _, args := range [][]string{{"usage", "--since", "yesterday"}, {"usage", "--by", "colour"}} {
		if _, errs, code := e.run("", args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
	e.assertNoSecrets()
}

func TestTightestHeadroom(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	got := usage.Tightest([]usage.Limits{
		{Profile: "a", Model: "x", Time: now, Status: "allowed", Windows: []usage.Window{
			{Name: "requests", Utilization: 0.1}, {Name: "tokens", Utilization: 0.7, ResetAt: now.Add(90 * time.Second)}, {Name: "odd", Utilization: -1}}},
		{Profile: "a", Model: "y", Time: now, Windows: []usage.Window{{Name: "5h", Utilization: 0.5}}},
		{Profile: "b", Time: now, Status: "rejected", ResetAt: now.Add(time.Hour), Windows: []usage.Window{{Name: "5h", Utilization: 0.2}}},
		{Profile: "c", Time: now, Windows: []usage.Window{{Name: "odd", Utilization: -1}}},
	})
	if h := got["a"]; h == nil || h.Window != "tokens" || h.Text(now) != "30% tokens, resets in 1m30s" {
		t.Errorf("a: %+v", h)
	}
	if h := got["b"]; h == nil || h.Left != 0 || h.Text(now) != "0% all rejected, resets in 1h0m0s" {
		t.Errorf("b: %+v", h)
	}
	if h := got["c"]; h != nil || h.Text(now) != "-" {
		t.Errorf("c: %+v", h)
	}
}

// TestModelsStatusHeadroom: `models status` shows each profile's tightest
// window from the usage store's latest limits, with its reset, in the
// table and as JSON; a profile with no limits shows "-" and null.
func TestModelsStatusHeadroom(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	e.ok(fixOpenAIKey+"\n", "models", "auth", "paste-token", "--provider", "openai", "--force")
	st, err := usage.Open(usagePath(e.state), usage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reset := time.Now().Add(90 * time.Minute)
	st.Limits(usage.Limits{Time: time.Now(), Agent: "main", Provider: "anthropic", Profile: "anthropic:manual", Model: "m", Status: "allowed",
		Windows: []usage.Window{
			{Name: "requests", Limit: 100, Remaining: 90, Utilization: 0.1},
			{Name: "tokens", Limit: 1000, Remaining: 300, Utilization: 0.7, ResetAt: reset},
		}})
	// Agent ops's own openai:manual would be another key: its limits are
	// not main's.
	st.Limits(usage.Limits{Time: time.Now(), Agent: "ops", Provider: "openai", Profile: "openai:manual", Model: "m", Status: "rejected"})
	st.Record(usage.Record{Time: time.Now(), Agent: "ops", Owner: "main", Provider: "openai", Profile: "openai:manual", Model: "m", Status: 200})
	st.Record(usage.Record{Time: time.Now(), Agent: "ops", Owner: "main", Provider: "anthropic", Profile: "anthropic:manual", Model: "m", Status: 200})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// ops has no profiles of its own: it uses main's, and their limits.
	var ur usageReport
	if err := json.Unmarshal([]byte(e.ok("", "usage", "--agent", "ops", "--json")), &ur); err != nil {
		t.Fatal(err)
	}
	for _, r := range ur.Rows {
		if h := r.Headroom; (r.Key == "openai:manual") != (h == nil) || h != nil && h.Window != "tokens" {
			t.Errorf("usage --agent ops: %s headroom %+v (openai: none; anthropic: main's)", r.Key, h)
		}
	}
	if len(ur.Rows) != 2 {
		t.Errorf("usage --agent ops: %+v", ur.Rows)
	}

	out := e.ok("", "models", "status")
	var anthropic, openai string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "anthropic:manual"):
			anthropic = line
		case strings.HasPrefix(strings.TrimSpace(line), "openai:manual"):
			openai = line
		}
	}
	if !strings.Contains(out, "HEADROOM") || !strings.Contains(anthropic, "30% tokens, resets in 1h") {
		t.Errorf("models status: want the anthropic profile's tightest window (30%% tokens) and its reset:\n%s", out)
	}
	if openai == "" || strings.Contains(openai, "%") {
		t.Errorf("models status: the openai profile has no limits, want no headroom:\n%s", out)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]*usage.ProfileHeadroom{}
	for _, p := range rep.Providers {
		for _, r := range p.Profiles {
			got[r.ID] = r.Headroom
		}
	}
	if h := got["anthropic:manual"]; h == nil || h.Left < 0.299 || h.Left > 0.301 || h.Window != "tokens" || h.ResetAt.Sub(reset).Abs() > time.Second {
		t.Errorf("models status --json: anthropic headroom %+v, want 0.3 of tokens resetting at %s", h, reset)
	}
	if h, ok := got["openai:manual"]; !ok || h != nil {
		t.Errorf("models status --json: openai headroom %+v (present %v), want null", h, ok)
	}
	e.assertNoSecrets()
}

// TestExplainUsageFacts: policy explain decides on the usage store's
// totals as the gateway does (none while only the built-in policy, which
// does not read them, is loaded): with the "$20 a day on a metered key"
// example in the policy directory and $21 spent on the key today, the
// input (--json) carries the profile's and the agent's usage and the key
// is denied with the cap as its reason.
func TestExplainUsageFacts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	var nothing struct {
		Input struct {
			Agent struct {
				Usage map[string]map[string]float64 `json:"usage"`
			} `json:"agent"`
		} `json:"input"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "policy", "explain", "--provider", "anthropic", "--json")), &nothing); err != nil {
		t.Fatal(err)
	}
	if nothing.Input.Agent.Usage != nil {
		t.Errorf("with the built-in policy alone (which does not read usage) the agent's usage is %v, want null as the gateway gives it", nothing.Input.Agent.Usage)
	}
	src, err := os.ReadFile("../policies/examples/metered_daily_cap.rego")
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile("policies/metered_daily_cap.rego", string(src))
	st, err := usage.Open(usagePath(e.state), usage.Options{FlushInterval: -1, Prices: usage.Prices{"m": {Output: 15}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 7 { // $3 each
		st.Record(usage.Record{Time: time.Now(), Agent: "main", Owner: "main", Provider: "anthropic", Profile: "anthropic:manual", Model: "m", Status: 200,
			Usage: usage.Usage{Output: 200_000}})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Input struct {
			Agent struct {
				Usage map[string]map[string]float64 `json:"usage"`
			} `json:"agent"`
			Profiles []struct {
				ID    string                        `json:"id"`
				Usage map[string]map[string]float64 `json:"usage"`
			} `json:"profiles"`
		} `json:"input"`
		Decision struct {
			Reasons map[string]string `json:"reasons"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "policy", "explain", "--provider", "anthropic", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	const reason = "denied: metered key spent $21 in the last 24 hours; the cap is $20 a day"
	if len(got.Input.Profiles) != 1 || got.Input.Profiles[0].Usage["24h"]["cost"] != 21 || got.Input.Profiles[0].Usage["24h"]["outputTokens"] != 1_400_000 ||
		got.Input.Agent.Usage["1h"]["requests"] != 7 || got.Decision.Reasons["anthropic:manual"] != reason {
		t.Errorf("explain --json: %+v", got)
	}
	if out := e.ok("", "policy", "explain", "--provider", "anthropic"); !strings.Contains(out, reason[len("denied: "):]) {
		t.Errorf("explain does not give the cap as the reason:\n%s", out)
	}
	var status struct {
		Providers []struct {
			Profiles []struct {
				ID    string                        `json:"id"`
				Why   string                        `json:"why"`
				Usage map[string]map[string]float64 `json:"usage"`
			} `json:"profiles"`
		} `json:"providers"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--json")), &status); err != nil {
		t.Fatal(err)
	}
	if len(status.Providers) != 1 || len(status.Providers[0].Profiles) != 1 || status.Providers[0].Profiles[0].Usage["24h"]["cost"] != 21 ||
		!strings.Contains(status.Providers[0].Profiles[0].Why, "metered key spent $21") {
		t.Errorf("models status --json: %+v", status)
	}
}
