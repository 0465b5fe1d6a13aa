package opensoul.examples.metered_daily_cap_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so this test holds
# with the other examples loaded too.
now := 1764385200000

day(cost) := {"1h": zero, "5h": zero, "24h": object.union(zero, {"cost": cost}), "30d": object.union(zero, {"cost": cost})}

zero := {"requests": 0, "tokens": 0, "inputTokens": 0, "outputTokens": 0, "cacheReadTokens": 0, "cacheWriteTokens": 0, "cost": 0}

facts(key_cost, sub_cost) := {
	"now": now,
	"agent": {"id": "main", "attrs": {}, "usage": day(key_cost + sub_cost)},
	"session": {"id": "", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false, "client": {"name": "claude-code", "version": "2.0.0"}},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:key", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0, "limits": null, "usage": day(key_cost)},
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0, "limits": null, "usage": day(sub_cost)},
	],
	"env": [],
}

test_the_key_serves_under_the_cap if {
	d := select.decision with input as facts(19.9, 0)
	"anthropic:key" in d.candidates
}

test_the_key_stops_at_the_cap if {
	d := select.decision with input as facts(20, 0)
	d.candidates == ["anthropic:sub"]
	d.reasons["anthropic:key"] == "denied: metered key spent $20 in the last 24 hours; the cap is $20 a day"
}

# A subscription is not metered: what its tokens would have cost on a key
# does not stop it.
test_a_subscription_is_not_capped if {
	d := select.decision with input as facts(25, 300)
	d.candidates == ["anthropic:sub"]
	contains(d.reasons["anthropic:key"], "spent $25")
}

# Without usage facts (usage.enabled off) nothing is capped.
test_no_usage_no_cap if {
	d := select.decision with input as json.patch(facts(0, 0), [{"op": "replace", "path": "/profiles/0/usage", "value": null}])
	"anthropic:key" in d.candidates
}
