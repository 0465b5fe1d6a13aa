package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestStatusResolvesRecentModels: a model the gateway noted as requested
// lately (auth-state.json recentModels) is resolved by models status and
// policy explain like the models in use, so a cooldown on the default
// model does not hide what serves the model clients actually send.
func TestStatusResolvesRecentModels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().UnixMilli()
	profiles, _ := json.Marshal(store.Profiles{Version: 1, Profiles: map[string]store.Credential{
		"anthropic:a": {Type: store.TypeAPIKey, Provider: "anthropic", Key: fixAnthropicKey},
	}})
	e.writeFile("agents/main/agent/auth-profiles.json", string(profiles))
	state, _ := json.Marshal(store.State{Version: 1, LastGood: map[string]string{}, UsageStats: map[string]*store.UsageStats{},
		RecentModels: map[string]int64{"anthropic/claude-opus-5": now - 60_000, "anthropic/claude-old-1": now - 48*3600_000}})
	e.writeFile("agents/main/agent/auth-state.json", string(state))

	if out := e.ok("", "models", "status"); !strings.Contains(out, "for anthropic/claude-opus-5: anthropic:a") || strings.Contains(out, "claude-old-1") {
		t.Errorf("models status should resolve the recent model (and not the one from two days ago):\n%s", out)
	}
	var rep struct {
		Models []struct{ Ref, Serving string } `json:"models"`
	}
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range rep.Models {
		found = found || (m.Ref == "anthropic/claude-opus-5" && m.Serving == "anthropic:a")
	}
	if !found {
		t.Errorf("models status --json lacks the recent model: %+v", rep.Models)
	}
	if out := e.ok("", "policy", "explain", "--provider", "anthropic"); !strings.Contains(out, "Serves anthropic/claude-opus-5: anthropic:a") {
		t.Errorf("policy explain should name what serves the recent model:\n%s", out)
	}
}
