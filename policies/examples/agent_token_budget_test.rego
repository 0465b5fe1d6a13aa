package opensoul.examples.agent_token_budget_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so this test holds
# with the other examples loaded too.
now := 1764385200000

zero := {"requests": 0, "tokens": 0, "inputTokens": 0, "outputTokens": 0, "cacheReadTokens": 0, "cacheWriteTokens": 0, "cost": 0}

day(tokens) := {"1h": zero, "5h": zero, "24h": object.union(zero, {"tokens": tokens}), "30d": object.union(zero, {"tokens": tokens})}

facts(agent, attrs, tokens) := {
	"now": now,
	"agent": {"id": agent, "attrs": attrs, "usage": day(tokens)},
	"session": {"id": "", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false, "client": {"name": "claude-code", "version": "2.0.0"}},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0, "limits": null, "usage": day(0)},
		{"id": "anthropic:team", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0, "limits": null, "usage": day(0)},
	],
	"env": [],
}

test_under_the_default_budget if {
	d := select.decision with input as facts("main", {}, 4900000)
	count(d.candidates) == 2
}

test_the_default_budget_denies_every_profile if {
	d := select.decision with input as facts("main", {}, 5000000)
	d.candidates == []
	d.reasons["anthropic:sub"] == "denied: agent main used 5000000 tokens in the last 24 hours; its daily budget is 5000000 tokens"
	d.reasons["anthropic:team"] == d.reasons["anthropic:sub"]
}

test_the_agent_attribute_sets_the_budget if {
	d := select.decision with input as facts("cron", {"dailyTokens": "2000000"}, 2000000)
	d.candidates == []
	contains(d.reasons["anthropic:sub"], "agent cron used 2000000 tokens in the last 24 hours; its daily budget is 2000000 tokens")
	under := select.decision with input as facts("cron", {"dailyTokens": "2000000"}, 1900000)
	count(under.candidates) == 2
}

# A budget that is not a number falls back to the default.
test_a_bad_attribute_uses_the_default if {
	d := select.decision with input as facts("cron", {"dailyTokens": "lots"}, 2000000)
	count(d.candidates) == 2
}
