package opensoul.examples.cron_no_api_keys_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so this test holds
# with the other examples loaded too.
now := 1764385200000

facts(agent) := {
	"now": now,
	"agent": {"id": agent},
	"session": {"id": "s1", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:key", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
	],
	"env": [],
}

test_cron_does_not_use_api_keys if {
	d := select.decision with input as facts("cron")
	d.candidates == ["anthropic:sub"]
	d.reasons["anthropic:key"] == "denied: agent cron never uses metered api_key profiles"
}

test_other_agents_still_use_api_keys if {
	d := select.decision with input as facts("main")
	d.candidates == ["anthropic:sub", "anthropic:key"]
}

test_cron_with_only_api_keys_has_no_candidate if {
	f := facts("cron")
	d := select.decision with input as object.union(f, {"profiles": [f.profiles[0]]})
	d.candidates == []
}
