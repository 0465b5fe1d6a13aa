package opensoul.examples.working_hours_tokens_test

import data.opensoul.select

facts(now) := {
	"now": now,
	"agent": {"id": "main"},
	"session": {"id": "s1", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:me@example.com", "provider": "anthropic", "type": "oauth", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:key", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
	],
	"env": [],
}


at(day, hour, minute) := ((day * 24 + hour) * 60 + minute) * 60000 + 1764115200000 # day 0 = Wed 2025-11-26T00:00Z

test_tokens_first_in_working_hours if {
	d := select.decision with input as facts(at(0, 9, 0))
	d.candidates[0] == "anthropic:sub"
	d.reasons["anthropic:sub"] == "preferred by data.opensoul.rules.prefer; candidate: round robin, a token profile (oauth, then token, then api_key; least recently used first)"
}

test_last_working_minute if {
	d := select.decision with input as facts(at(0, 17, 59))
	d.candidates[0] == "anthropic:sub"
}

test_built_in_order_after_hours if {
	d := select.decision with input as facts(at(0, 18, 0))
	d.candidates == ["anthropic:me@example.com", "anthropic:sub", "anthropic:key"]
}

test_built_in_order_before_hours if {
	d := select.decision with input as facts(at(0, 8, 59))
	d.candidates[0] == "anthropic:me@example.com"
}

test_built_in_order_on_weekends if {
	d := select.decision with input as facts(at(3, 12, 0)) # Saturday noon
	d.candidates[0] == "anthropic:me@example.com"
}
