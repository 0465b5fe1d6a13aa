package policy

import (
	"bytes"
	"context"
	"testing"
)

// TestExampleRegoTests runs the Rego tests of the example policies, each
// example alone and all of them together.
func TestExampleRegoTests(t *testing.T) {
	t.Parallel()
	const dir = "../policies/examples/"
	sets := map[string][]string{
		"cron":          {dir + "cron_no_api_keys.rego", dir + "cron_no_api_keys_test.rego"},
		"working hours": {dir + "working_hours_tokens.rego", dir + "working_hours_tokens_test.rego"},
		"opus routing":  {dir + "opus_routing.rego", dir + "opus_routing_test.rego"},
		"interactive":   {dir + "interactive_tokens.rego", dir + "interactive_tokens_test.rego"},
		"batch":         {dir + "batch_metered.rego", dir + "batch_metered_test.rego"},
		"subscription":  {dir + "subscription_headroom.rego", dir + "subscription_headroom_test.rego"},
		"daily cap":     {dir + "metered_daily_cap.rego", dir + "metered_daily_cap_test.rego"},
		"token budget":  {dir + "agent_token_budget.rego", dir + "agent_token_budget_test.rego"},
		"all together":  {dir},
	}
	for name, paths := range sets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			failed, err := Test(context.Background(), paths, &out, false)
			if err != nil || failed != 0 {
				t.Fatalf("failed=%d err=%v\n%s", failed, err, out.String())
			}
		})
	}
}
