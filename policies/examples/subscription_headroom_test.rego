package opensoul.examples.subscription_headroom_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so this test holds
# with the other examples loaded too.
now := 1764385200000

facts(headroom) := {
	"now": now,
	"agent": {"id": "main"},
	"session": {"id": "s1", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false, "client": {"name": "claude-code", "version": "1.0.0"}},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:key", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0, "limits": null},
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0,
		 "limits": {"headroom": headroom, "status": "allowed", "resetAt": 0}},
	],
	"env": [],
}

test_the_subscription_serves_while_it_has_headroom if {
	d := select.decision with input as facts(0.4)
	d.candidates == ["anthropic:sub", "anthropic:key"]
}

test_a_nearly_spent_subscription_is_kept_back if {
	d := select.decision with input as facts(0)
	d.candidates == ["anthropic:key"]
	contains(d.reasons["anthropic:sub"], "the subscription has 0% of its window left; kept for when it refills")
}
