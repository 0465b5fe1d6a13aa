package opensoul.examples.interactive_tokens_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so this test holds
# with the other examples loaded too.
now := 1764385200000

facts(client) := {
	"now": now,
	"agent": {"id": "main"},
	"session": {"id": "s1", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": false, "client": {"name": client, "version": "1.0.0"}},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:key", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:sub", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
	],
	"env": [],
}

test_claude_code_uses_the_subscription_first if {
	d := select.decision with input as facts("claude-code")
	d.candidates == ["anthropic:sub", "anthropic:key"]
}

test_an_sdk_script_uses_metered_keys_only if {
	d := select.decision with input as facts("anthropic-sdk")
	d.candidates == ["anthropic:key"]
	d.reasons["anthropic:sub"] == "denied: subscription tokens serve interactive clients only, not anthropic-sdk"
}

test_unknown_clients_too if {
	d := select.decision with input as facts("unknown")
	d.candidates == ["anthropic:key"]
}
