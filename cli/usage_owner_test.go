package cli

import (
	"database/sql"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/policy"
)

// postAs sends one Anthropic message through g as agent (the gateway
// token names it with x-opensoul-agent).
func postAs(t *testing.T, g *runningGateway, agent string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+g.addr+"/anthropic/v1/messages", strings.NewReader(`{"model":"m","max_tokens":1,"messages":[]}`))
	req.Header.Set("x-api-key", fixGatewayToken)
	req.Header.Set("x-opensoul-agent", agent)
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s\n%s", agent, resp.StatusCode, body, g.stderr.String())
	}
}

// usageRows runs `opensoul usage --json` with args and returns its rows
// as requests by "owner/key".
func usageRows(t *testing.T, e *env, args ...string) map[string]int64 {
	t.Helper()
	var rep usageReport
	if err := json.Unmarshal([]byte(e.ok("", append([]string{"usage", "--json"}, args...)...)), &rep); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rep.Rows {
		out[r.Owner+"/"+r.Key] += r.Requests
	}
	return out
}

// statusUsage is `models status --agent A --json`'s 24-hour usage of each
// profile.
func statusUsage(t *testing.T, e *env, agent string) map[string]policy.UsageTotals {
	t.Helper()
	var rep statusReport
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--agent", agent, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	out := map[string]policy.UsageTotals{}
	for _, p := range rep.Providers {
		for _, r := range p.Profiles {
			if r.Usage != nil {
				out[r.ID] = r.Usage.H24
			}
		}
	}
	return out
}

// TestUsagePerOwner: main and work each have their own
// anthropic:manual; ops has only an OpenAI key and uses main's. After the
// real gateway served main 3, work 2 and ops 1 answers, `opensoul usage`
// shows main's and work's key as two rows with their owner (ops's
// answer on main's), --agent keeps that agent's requests, --by owner and
// --by agent group both ways, and `models status --agent` gives each
// agent its own credential's usage.
func TestUsagePerOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := fakeAnthropic(t, nil) // 1 input, 1 output token per answer
	e.writeFile(".env", envGatewayToken+"="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+up.URL+"\n")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--agent", "work", "--force")
	e.ok(fixOpenAIKey+"\n", "models", "auth", "paste-token", "--provider", "openai", "--agent", "ops", "--force")
	g := startGateway(t, e, "127.0.0.1:0")
	for agent, n := range map[string]int{"main": 3, "work": 2, "ops": 1} {
		for range n {
			postAs(t, g, agent)
		}
	}
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}

	const id = "anthropic:manual"
	if got := usageRows(t, e); !maps.Equal(got, map[string]int64{"main/" + id: 4, "work/" + id: 2}) {
		t.Errorf("usage by profile: %v, want main's %s 4 (main 3, ops 1) and work's 2", got, id)
	}
	for agent, want := range map[string]map[string]int64{
		"main": {"main/" + id: 3}, "work": {"work/" + id: 2}, "ops": {"main/" + id: 1},
	} {
		if got := usageRows(t, e, "--agent", agent); !maps.Equal(got, want) {
			t.Errorf("usage --agent %s: %v, want %v", agent, got, want)
		}
	}
	if got := usageRows(t, e, "--by", "owner"); !maps.Equal(got, map[string]int64{"/main": 4, "/work": 2}) {
		t.Errorf("usage --by owner: %v", got)
	}
	if got := usageRows(t, e, "--by", "agent"); !maps.Equal(got, map[string]int64{"/main": 3, "/work": 2, "/ops": 1}) {
		t.Errorf("usage --by agent: %v", got)
	}
	out := e.ok("", "usage")
	if !strings.Contains(out, "OWNER") || !strings.Contains(out, id+"  work") || !strings.Contains(out, id+"  main") {
		t.Errorf("usage: want an OWNER column naming main and work:\n%s", out)
	}
	for agent, want := range map[string]policy.UsageTotals{
		"main": {Requests: 4, Tokens: 8, Input: 4, Output: 4},
		"work": {Requests: 2, Tokens: 4, Input: 2, Output: 2},
		"ops":  {Requests: 4, Tokens: 8, Input: 4, Output: 4}, // main's key, which it uses
	} {
		if got := statusUsage(t, e, agent)[id]; got != want {
			t.Errorf("models status --agent %s: %s's 24h usage %+v, want %+v", agent, id, got, want)
		}
	}
	e.assertNoSecrets()
}

// TestUsageOwnersOfAnOldStore: a usage.db written before rows named the
// credential's owner keeps its history; each old row's owner is whose
// profile file holds its id for its agent now (work's own key, main's for
// ops, which inherits it; none for an environment key; a profile no
// file holds any more: the agent's own).
func TestUsageOwnersOfAnOldStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--agent", "work", "--force")
	e.ok(fixOpenAIKey+"\n", "models", "auth", "paste-token", "--provider", "openai", "--agent", "ops", "--force")
	db, err := sql.Open("sqlite3", "file:"+usagePath(e.state))
	if err != nil {
		t.Fatal(err)
	}
	bucket := time.Now().Add(-time.Hour).Truncate(time.Minute).Unix()
	for _, q := range []string{`CREATE TABLE usage (bucket INTEGER NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,
		profile TEXT NOT NULL, model TEXT NOT NULL, client TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0,
		errors INTEGER NOT NULL DEFAULT 0, input INTEGER NOT NULL DEFAULT 0, output INTEGER NOT NULL DEFAULT 0,
		cache_read INTEGER NOT NULL DEFAULT 0, cache_write INTEGER NOT NULL DEFAULT 0, cost_micros INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (bucket, agent, provider, profile, model, client)) WITHOUT ROWID`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		agent, profile string
		requests       int
	}{{"main", "anthropic:manual", 3}, {"ops", "anthropic:manual", 1}, {"work", "anthropic:manual", 2},
		{"main", "env:ANTHROPIC_API_KEY", 5}, {"work", "anthropic:gone", 7}} {
		if _, err := db.Exec(`INSERT INTO usage (bucket, agent, provider, profile, model, client, requests, input, output)
			VALUES (?, ?, 'anthropic', ?, 'm', '', ?, ?, ?)`, bucket, r.agent, r.profile, r.requests, r.requests, r.requests); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	want := map[string]int64{"main/anthropic:manual": 4, "work/anthropic:manual": 2, "/env:ANTHROPIC_API_KEY": 5, "work/anthropic:gone": 7}
	for range 2 { // migrated once; the second run reads the new layout
		if got := usageRows(t, e); !maps.Equal(got, want) {
			t.Errorf("usage of the old store: %v, want %v", got, want)
		}
	}
	if got := statusUsage(t, e, "ops")["anthropic:manual"]; got.Requests != 4 {
		t.Errorf("models status --agent ops: anthropic:manual's 24h usage %+v, want main's key's 4 requests", got)
	}
	if got := statusUsage(t, e, "work")["anthropic:manual"]; got.Requests != 2 {
		t.Errorf("models status --agent work: anthropic:manual's 24h usage %+v, want its own key's 2 requests", got)
	}
	e.assertNoSecrets()
}
