package opensoul.examples.batch_metered_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so this test holds
# with the other examples loaded too.
now := 1764385200000

facts(agent, attrs) := {
	"now": now,
	"agent": {"id": agent, "attrs": attrs},
	"session": {"id": "", "new": false, "pin": null, "client": {"name": "", "version": ""}, "started": 0, "requests": 0},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false, "client": {"name": "claude-code", "version": "2.1.332"}},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:key", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:login", "provider": "anthropic", "type": "oauth", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
	],
	"env": [],
}

test_a_batch_agent_gets_metered_keys_only if {
	d := select.decision with input as facts("nightly", {"purpose": "batch", "team": "data"})
	d.candidates == ["anthropic:key"]
	d.reasons["anthropic:sub"] == "denied: agent nightly has purpose batch: metered api_key profiles only"
	d.reasons["anthropic:login"] == "denied: agent nightly has purpose batch: metered api_key profiles only"
}

test_other_agents_keep_the_built_in_order if {
	d := select.decision with input as facts("main", {"purpose": "interactive"})
	d.candidates == ["anthropic:login", "anthropic:sub", "anthropic:key"]
}

test_an_agent_without_attrs_is_not_batch if {
	d := select.decision with input as facts("main", {})
	d.candidates == ["anthropic:login", "anthropic:sub", "anthropic:key"]
}
