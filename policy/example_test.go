package policy_test

import (
	"context"
	"fmt"
	"os"

	"github.com/opensoul/opensoul/policy"
)

// The gateway builds an Input per request and asks the engine which
// profiles to try; a background loop calls Reload to pick up edits.
func ExampleEngine_Decide() {
	ctx := context.Background()
	e, err := policy.New(ctx, policy.Options{Dirs: []string{"/nonexistent/policies"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	in := &policy.Input{
		Now:     1764032400000,
		Agent:   policy.AgentFacts{ID: "main"},
		Request: policy.RequestFacts{Provider: "anthropic", Model: "claude-sonnet-5"},
		Profiles: []policy.ProfileFacts{
			{ID: "anthropic:key", Provider: "anthropic", Type: "api_key", Status: "static"},
			{ID: "anthropic:work", Provider: "anthropic", Type: "token", Status: "ok", CooldownUntil: 1764032460000},
			{ID: "anthropic:me@example.com", Provider: "anthropic", Type: "oauth", Status: "ok"},
		},
	}
	d, err := e.Decide(ctx, in)
	if err != nil {
		fmt.Println(err) // fail closed for this request
		return
	}
	fmt.Println("try:", d.Candidates)
	fmt.Println("cooling:", d.Cooling, "-", d.Reasons["anthropic:work"])

	if _, err := e.Reload(ctx); err != nil {
		fmt.Println("new policies refused, old ones kept:", err)
	}
	// Output:
	// try: [anthropic:me@example.com anthropic:key]
	// cooling: [anthropic:work] - in cooldown until 2025-11-25T01:01:00Z
}

func ExampleWriteExplain() {
	in := &policy.Input{
		Now:      1764032400000,
		Agent:    policy.AgentFacts{ID: "cron"},
		Session:  policy.SessionFacts{ID: "nightly"},
		Request:  policy.RequestFacts{Provider: "anthropic", Model: "claude-sonnet-5"},
		Profiles: []policy.ProfileFacts{{ID: "anthropic:key", Type: "api_key", Status: "static", Kind: "api_key"}},
	}
	d := policy.Decision{Candidates: []string{}, Cooling: []string{}, Reasons: map[string]string{
		"anthropic:key": "denied: agent cron never uses metered api_key profiles",
	}}
	policy.WriteExplain(os.Stdout, in, d)
	// Output:
	// Facts
	//   now          2025-11-25T01:00:00Z
	//   agent        cron
	//   request      provider anthropic, model claude-sonnet-5
	//   session      nightly
	//   order        agent store: -; config: -
	//   environment  -
	//
	//   PROFILE        TYPE     STATUS  KIND     EXPIRES  LAST USED  COOLDOWN UNTIL  DISABLED UNTIL  ERRORS
	//   anthropic:key  api_key  static  api_key  -        -          -               -               0
	//
	// Decision
	//   strict: no (fails over down the candidates)
	//   candidates: none
	//   not used:
	//     anthropic:key  denied: agent cron never uses metered api_key profiles
}
