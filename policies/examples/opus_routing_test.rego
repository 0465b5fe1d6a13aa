package opensoul.examples.opus_routing_test

import data.opensoul.select

# Saturday 2025-11-29T03:00:00Z: outside working hours, so these tests
# hold with the other examples loaded too.
now := 1764385200000

facts(model) := {
	"now": now,
	"agent": {"id": "main"},
	"session": {"id": "s1", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": model, "api": "anthropic-messages", "stream": true},
	"order": {"store": [], "config": []},
	"profiles": [
		{"id": "anthropic:opus", "provider": "anthropic", "type": "api_key", "status": "static", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
		{"id": "anthropic:team", "provider": "anthropic", "type": "token", "status": "ok", "lastUsed": 0, "cooldownUntil": 0, "disabledUntil": 0},
	],
	"env": [],
}

test_opus_models_go_to_the_opus_profile if {
	every model in ["claude-opus-4-5", "claude-opus-5"] {
		d := select.decision with input as facts(model)
		d.candidates == ["anthropic:opus", "anthropic:team"]
	}
}

test_other_models_use_the_built_in_order if {
	every model in ["claude-sonnet-5", "claude-haiku-4-5", "opus"] {
		d := select.decision with input as facts(model)
		d.candidates == ["anthropic:team", "anthropic:opus"]
	}
}

test_cooling_opus_profile_falls_back if {
	f := facts("claude-opus-5")
	busy := object.union(f.profiles[0], {"cooldownUntil": now + 60000})
	d := select.decision with input as object.union(f, {"profiles": [busy, f.profiles[1]]})
	d.candidates == ["anthropic:team"]
	d.cooling == ["anthropic:opus"]
}
