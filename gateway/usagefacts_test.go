package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	gwchat "github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// dailyCapGateway is a gateway with the usage store (output tokens
// priced at $15 per million), the policy example
// policies/examples/metered_daily_cap.rego loaded from a policy
// directory, chat commands, and the main agent's profiles in an explicit
// order: the metered key first.
func dailyCapGateway(t testing.TB, creds map[string]store.Credential, order []string) (*fixture, *usage.Store) {
	t.Helper()
	src, err := os.ReadFile("../policies/examples/metered_daily_cap.rego")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "metered_daily_cap.rego"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	engine, err := policy.New(context.Background(), policy.Options{Dirs: []string{dir}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var st *usage.Store
	f := newFixture(t, func(f *fixture, o *gateway.Options) {
		st = openUsage(t, usage.Options{FlushInterval: -1, Now: f.clock.Now,
			Prices: usage.Prices{"claude-sonnet-5": {Input: 3, Output: 15}}})
		o.Usage, o.Selector, f.engine = st, engine, engine
		o.Config.Order = map[string][]string{"anthropic": order}
		o.Chat = func(s *gateway.Server) (gateway.ChatInterceptor, error) {
			return gwchat.New(gwchat.Options{Store: f.st, Selector: engine, Env: s.Env, Snapshot: s.Snapshot, Resolver: s.Resolver, Now: f.clock.Now,
				Config: gwchat.Config{DefaultModel: "anthropic/claude-sonnet-5", Order: o.Config.Order,
					Providers: map[string]gwchat.Provider{"anthropic": {BaseURL: f.anthropic.URL}}}})
		}
	})
	f.profiles("main", creds, nil)
	// Every answer of the metered key spends 200000 output tokens: $3.
	f.anthropic.set(keyA, answer{status: 200, body: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":200000}}`})
	return f, st
}

// served sends one request and waits until the usage store has recorded
// its answer (the gateway records it when the body is finished with,
// which may be just after the client has read it).
func served(t *testing.T, f *fixture, st *usage.Store, n int64) (status int, profile, body string) {
	t.Helper()
	resp, body := f.messages("claude-sonnet-5", nil)
	waitFor(t, "the answer recorded", func() bool { return st.Facts().Agent("main").H1.Requests >= n || resp.StatusCode != 200 })
	return resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body
}

// TestDailyCapMovesToTheOtherProfile: with the "$20 a day on a metered
// key" example loaded, the key serves until its 24-hour spend reaches
// $20 — 7 answers at $3 — and the next request goes to the other
// profile; the gateway's resolver (policy explain's) and /model status
// give the reason, and the input shows the usage facts.
func TestDailyCapMovesToTheOtherProfile(t *testing.T) {
	t.Parallel()
	f, st := dailyCapGateway(t, map[string]store.Credential{
		"anthropic:metered": anthropicKey(keyA),
		"anthropic:team":    anthropicKey(keyB),
	}, []string{"anthropic:metered", "anthropic:team"})
	f.anthropic.set(keyB, answer{}) // 3 input and 1 output tokens
	var by []string
	for i := range 9 {
		status, profile, body := served(t, f, st, int64(i+1))
		if status != 200 {
			t.Fatalf("request %d: %d %s", i+1, status, body)
		}
		by = append(by, profile)
	}
	want := "anthropic:metered ×7, then anthropic:team"
	for i, p := range by {
		if (i < 7 && p != "anthropic:metered") || (i >= 7 && p != "anthropic:team") {
			t.Fatalf("served by %v, want %s", by, want)
		}
	}
	if got := st.Facts().Profile("main", "anthropic:metered").H24.Cost; got != 21 {
		t.Errorf("the metered key's 24h cost is %v, want 21", got)
	}
	// The team key is capped too once it spends $20, but it spent $6.
	res, err := f.gw.Resolver(context.Background(), f.clock.Now()).Resolve(context.Background(), snapshot(t, f), gateway.Query{Agent: "main", Provider: "anthropic", Model: "claude-sonnet-5"}, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	const reason = "denied: metered key spent $21 in the last 24 hours; the cap is $20 a day"
	if got := res.Decision.Reasons["anthropic:metered"]; got != reason || res.Serving != "anthropic:team" {
		t.Errorf("explain: serving %q, the metered key's reason %q, want %q", res.Serving, got, reason)
	}
	js, err := json.Marshal(res.Input)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"agent":{"id":"main","attrs":{},"usage":{"1h":{"requests":9,"tokens":1400000,"inputTokens":6,"outputTokens":1400000,`, `"24h":{"requests":7,"tokens":1400000,"inputTokens":0,"outputTokens":1400000,"cacheReadTokens":0,"cacheWriteTokens":0,"cost":21}`} {
		if !strings.Contains(string(js), w) {
			t.Errorf("the input lacks %s:\n%s", w, js)
		}
	}
	_, body := f.do("POST", "/anthropic/v1/messages", `{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"/model status"}]}`,
		map[string]string{"x-api-key": gatewayToken, "anthropic-version": "2023-06-01"})
	if !strings.Contains(body, "not used: denied: metered key spent $21 in the last 24 hours; the cap is $20 a day") {
		t.Errorf("/model status does not give the cap as the reason:\n%s", body)
	}
}

// TestDailyCapRefusesWithTheReason: with only the metered key, the
// request after the cap is refused, and the answer says why.
func TestDailyCapRefusesWithTheReason(t *testing.T) {
	t.Parallel()
	f, st := dailyCapGateway(t, map[string]store.Credential{"anthropic:metered": anthropicKey(keyA)}, []string{"anthropic:metered"})
	for i := range 7 {
		if status, _, body := served(t, f, st, int64(i+1)); status != 200 {
			t.Fatalf("request %d under the cap: %d %s", i+1, status, body)
		}
	}
	status, _, body := served(t, f, st, 8)
	if status == 200 || !strings.Contains(body, "metered key spent $21 in the last 24 hours; the cap is $20 a day") {
		t.Errorf("past the cap: %d %s, want a refusal naming the cap", status, body)
	}
	if n := len(f.anthropic.requests()); n != 7 {
		t.Errorf("the upstream saw %d requests, want 7 (none past the cap)", n)
	}
}

func snapshot(t *testing.T, f *fixture) *gateway.Snapshot {
	t.Helper()
	snap, err := gateway.LoadSnapshot(f.st, "main")
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// BenchmarkUsagePolicyHitRate: a user policy that reads usage (the daily
// cap) is loaded, so the usage facts are in the decision cache's key,
// and every answer (1000 input and 500 output tokens, about a cent)
// moves the counters. It reports the share of decisions the cache
// answered over the run (hit-%) and CPU per request; a fresh store's
// totals start at zero, where every answer moves a quantized count, so
// the rate grows with the run's length (compare -benchtime 3000x and
// 30000x).
func BenchmarkUsagePolicyHitRate(b *testing.B) {
	f, _ := dailyCapGateway(b, map[string]store.Credential{"anthropic:sub": {Type: store.TypeToken, Provider: "anthropic", Token: tokenC}},
		[]string{"anthropic:sub"})
	f.anthropic.set(tokenC, answer{status: 200, body: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1000,"output_tokens":500}}`})
	engine := f.engine
	before := engine.Stats()
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		benchSend(b, f, "")
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	after := engine.Stats()
	dec, evals := after.Decisions-before.Decisions, after.Evaluations-before.Evaluations
	b.ReportMetric(100*(1-float64(evals)/float64(dec)), "hit-%")
}

// BenchmarkUsageFactsProfiles is BenchmarkGatewayProfiles' 1000-profile
// cases without and with the usage store (its clock the gateway's, so
// every answer lands in every window), built-in policy only: what keeping
// usage costs a request when an agent has many profiles. (Each quantized
// change of a total is a new usage generation, on which an agent's
// profile facts are built again — a pass over 1000 profiles — so the
// gateway gives usage facts only to a policy that may read them; before
// that rule session-1000 went from 75 to 300-430 cpu-µs per request.)
func BenchmarkUsageFactsProfiles(b *testing.B) {
	for _, session := range []string{"bench", ""} {
		for _, withStore := range []bool{false, true} {
			name := map[string]string{"bench": "session-1000", "": "rotate-1000"}[session] + map[bool]string{false: "/off", true: "/store"}[withStore]
			b.Run(name, func(b *testing.B) {
				const n = 1000
				f := newFixture(b, func(f *fixture, o *gateway.Options) {
					o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
					if withStore {
						o.Usage = openUsage(b, usage.Options{Now: f.clock.Now})
					}
				})
				creds := make(map[string]store.Credential, n)
				for i := range n {
					key := fmt.Sprintf("sk-ant-api03-BENCHKEY%04d-aaaaaaaaaaaaaaaaaaaa", i)
					creds[fmt.Sprintf("anthropic:p%04d", i)] = anthropicKey(key)
					f.anthropic.set(key, answer{})
				}
				f.profiles("main", creds, nil)
				benchSend(b, f, session)
				benchSend(b, f, session)
				b.ReportAllocs()
				start := cpuTime()
				for b.Loop() {
					benchSend(b, f, session)
				}
				b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// TestBuiltinPolicyGetsNoUsage: while only the built-in policy (which
// never reads usage) decides, the gateway leaves the usage facts out of
// the input, so the counters moving never rebuilds an agent's facts.
func TestBuiltinPolicyGetsNoUsage(t *testing.T) {
	t.Parallel()
	var st *usage.Store
	f := newFixture(t, func(f *fixture, o *gateway.Options) {
		st = openUsage(t, usage.Options{FlushInterval: -1, Now: f.clock.Now})
		o.Usage = st
	})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	if status, _, body := served(t, f, st, 1); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if st.Facts().Profile("main", "anthropic:a").H1.Requests != 1 {
		t.Fatal("the usage store did not count the answer")
	}
	res, err := f.gw.Resolver(context.Background(), f.clock.Now()).Resolve(context.Background(), snapshot(t, f), gateway.Query{Agent: "main", Provider: "anthropic", Model: "claude-sonnet-5"}, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Input.Agent.Usage != nil || res.Input.Profiles[0].Usage != nil {
		t.Errorf("the built-in policy alone got usage facts: agent %+v, profile %+v", res.Input.Agent.Usage, res.Input.Profiles[0].Usage)
	}
}

// benchSend sends one Messages request straight to the gateway's handler
// (in session when it is not "") and fails b unless it is served.
func benchSend(b *testing.B, f *fixture, session string) {
	req := httptest.NewRequest("POST", "/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", gatewayToken)
	req.Header.Set("content-type", "application/json")
	if session != "" {
		req.Header.Set("x-opensoul-session", session)
	}
	w := httptest.NewRecorder()
	f.gw.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("status %d: %s", w.Code, w.Body)
	}
}
