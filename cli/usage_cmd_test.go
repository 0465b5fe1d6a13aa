package cli

import (
	"encoding/json"
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
	got := tightest([]usage.Limits{
		{Profile: "a", Model: "x", Time: now, Status: "allowed", Windows: []usage.Window{
			{Name: "requests", Utilization: 0.1}, {Name: "tokens", Utilization: 0.7, ResetAt: now.Add(90 * time.Second)}, {Name: "odd", Utilization: -1}}},
		{Profile: "a", Model: "y", Time: now, Windows: []usage.Window{{Name: "5h", Utilization: 0.5}}},
		{Profile: "b", Time: now, Status: "rejected", ResetAt: now.Add(time.Hour), Windows: []usage.Window{{Name: "5h", Utilization: 0.2}}},
		{Profile: "c", Time: now, Windows: []usage.Window{{Name: "odd", Utilization: -1}}},
	})
	if h := got["a"]; h == nil || h.Window != "tokens" || h.text(now) != "30% tokens, resets in 1m30s" {
		t.Errorf("a: %+v", h)
	}
	if h := got["b"]; h == nil || h.Left != 0 || h.text(now) != "0% all rejected, resets in 1h0m0s" {
		t.Errorf("b: %+v", h)
	}
	if h := got["c"]; h != nil || h.text(now) != "-" {
		t.Errorf("c: %+v", h)
	}
}
