package gateway_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestDecisionMetrics: /metrics counts the policy's decisions and the
// ones it had to evaluate, as the engine's own Stats count them, so the
// decision cache's hit rate can be watched.
func TestDecisionMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fourKeys(f)
	for range 5 {
		if resp, body := f.messages("claude-sonnet-5", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	_, body := f.do("GET", "/metrics", "", nil)
	st := f.engine.Stats()
	if st.Decisions < 5 || st.Evaluations == 0 || st.Evaluations >= st.Decisions {
		t.Fatalf("engine stats %+v: want 5+ decisions, some but not all evaluated", st)
	}
	for _, want := range []string{
		fmt.Sprintf("opensoul_policy_decisions_total %d\n", st.Decisions),
		fmt.Sprintf("opensoul_policy_evaluations_total %d\n", st.Evaluations),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(body, "opensoul_policy_"))
		}
	}
}
