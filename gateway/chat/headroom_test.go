package chat_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// TestStatusHeadroom: /model status marks each profile with the tightest
// window its provider last reported (Options.Limits, the usage store's
// Latest) and its reset; a rejected profile shows nothing left until the
// rejection lifts; a profile with no limits shows no headroom.
func TestStatusHeadroom(t *testing.T) {
	t.Parallel()
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(t.TempDir())
	if err := st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["anthropic:default"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyDefault}
		p.Profiles["anthropic:work"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyWork}
		p.Profiles["anthropic:billing"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyBilling}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	limits := []usage.Limits{
		{Time: now, Agent: "main", Provider: "anthropic", Profile: "anthropic:default", Model: "claude-sonnet-5", Status: "allowed", Windows: []usage.Window{
			{Name: "requests", Limit: 50, Remaining: 45, Utilization: 0.1, ResetAt: now.Add(time.Minute)},
			{Name: "tokens", Limit: 1000, Remaining: 380, Utilization: 0.62, ResetAt: now.Add(12 * time.Minute)},
		}},
		{Time: now, Agent: "main", Provider: "anthropic", Profile: "anthropic:work", Model: "claude-sonnet-5", Status: "rejected", ResetAt: now.Add(2 * time.Hour),
			Windows: []usage.Window{{Name: "5h", Limit: -1, Remaining: -1, Utilization: 1}}},
		// Agent ops's own anthropic:billing is another key: not main's.
		{Time: now, Agent: "ops", Provider: "anthropic", Profile: "anthropic:billing", Model: "claude-sonnet-5", Status: "rejected", ResetAt: now.Add(time.Hour)},
	}
	h, err := chat.New(chat.Options{
		Store: st, Config: chatConfig("https://api.anthropic.example", "https://o.example"), Selector: engine,
		Env: func() gateway.Env { return nil }, Now: fixedNow,
		Limits: func() []usage.Limits { return limits },
	})
	if err != nil {
		t.Fatal(err)
	}
	hf := &handlerFixture{t: t, st: st, h: h}
	w, ok := hf.do(anthropicReq("s", "/model status", false))
	if !ok {
		t.Fatal("not handled")
	}
	text := textOf(t, w)
	lines := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	if l := lines["anthropic:default"]; !strings.Contains(l, "headroom 38% tokens, resets in 12m0s") {
		t.Errorf("anthropic:default line %q: want its tightest window (38%% tokens) and reset\n%s", l, text)
	}
	if l := lines["anthropic:work"]; !strings.Contains(l, "headroom 0% all rejected, resets in 2h0m0s") {
		t.Errorf("anthropic:work line %q: want rejected until the reset\n%s", l, text)
	}
	if l := lines["anthropic:billing"]; l == "" || strings.Contains(l, "headroom") {
		t.Errorf("anthropic:billing line %q: no limits reported, want no headroom\n%s", l, text)
	}
	noSecrets(t, "/model status", text)
}
