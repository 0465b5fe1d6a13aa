package gateway_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// TestExposedNeedsAToken: beyond loopback a config whose only tokens are
// empty is refused by New and by SetConfig (which keeps the old config).
func TestExposedNeedsAToken(t *testing.T) {
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.Exposed = true }))
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})

	open := f.cfg
	open.Token, open.AgentTokens = "", map[string]string{"cron": ""}
	if err := f.gw.SetConfig(open); !errors.Is(err, gateway.ErrNoToken) {
		t.Fatalf("SetConfig without a token: %v", err)
	}
	if resp, _ := f.messages("m", map[string]string{"x-api-key": ""}); resp.StatusCode != 401 {
		t.Errorf("after the refused SetConfig, no token: %d", resp.StatusCode)
	}
	if resp, _ := f.messages("m", nil); resp.StatusCode != 200 {
		t.Errorf("after the refused SetConfig, the old token: %d", resp.StatusCode)
	}
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := gateway.Options{Store: f.st, Config: open, Selector: engine, Logger: slog.New(slog.DiscardHandler)}
	if _, err := gateway.New(o); !errors.Is(err, gateway.ErrNoToken) {
		t.Errorf("New without a token: %v", err)
	}
	// Loopback-only, an open gateway is allowed.
	open.Exposed = false
	if err := f.gw.SetConfig(open); err != nil {
		t.Errorf("loopback without a token: %v", err)
	}
}

// TestMetricsExposed: beyond loopback /metrics asks for the gateway
// token, and no profile id holding an email reaches a label.
func TestMetricsExposed(t *testing.T) {
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.Exposed = true }))
	id := "anthropic:jane.doe@example.com"
	f.profiles("main", map[string]store.Credential{id: anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{status: 429, body: `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`})
	f.messages("m", nil)
	if resp, _ := f.do("GET", "/metrics", "", nil); resp.StatusCode != 401 {
		t.Errorf("/metrics without a token: %d", resp.StatusCode)
	}
	if resp, _ := f.do("GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + workToken}); resp.StatusCode != 401 {
		t.Errorf("/metrics with an agent token while a gateway token is set: %d", resp.StatusCode)
	}
	resp, body := f.do("GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + gatewayToken})
	if resp.StatusCode != 200 || !strings.Contains(body, "opensoul_profile_failures_total") {
		t.Fatalf("/metrics with the token: %d", resp.StatusCode)
	}
	if strings.Contains(body, "example.com") || strings.Contains(body, "jane") {
		t.Errorf("an email reached the metrics:\n%s", grepLines(body, "example.com"))
	}
	if !strings.Contains(body, `profile="anthropic:id-`) {
		t.Errorf("the profile is not shown by its hashed id:\n%s", grepLines(body, "opensoul_profile"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
