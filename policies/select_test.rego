package opensoul.select_test

import data.opensoul.select

# 2025-11-25T01:00:00Z
now := 1764032400000

minute := 60000

prof(id, type) := {
	"id": id, "provider": "anthropic", "type": type, "status": "ok", "kind": "unknown",
	"expiresAt": null, "email": null, "lastUsed": 0, "cooldownUntil": 0, "cooldownModel": null,
	"disabledUntil": 0, "disabledReason": null, "errorCount": 0,
}

patched(p, fields) := object.union(p, fields)

req(profiles) := {
	"now": now,
	"agent": {"id": "main"},
	"session": {"id": "s1", "new": false, "pin": null},
	"request": {"provider": "anthropic", "model": "claude-sonnet-5", "api": "anthropic-messages", "stream": true},
	"order": {"store": [], "config": []},
	"profiles": profiles,
	"env": [],
}

with_order(x, source, ids) := object.union(x, {"order": {source: ids}})

with_pin(x, id, source) := object.union(x, {"session": {"pin": {"profile": id, "source": source}}})

three := [prof("anthropic:key", "api_key"), prof("anthropic:tok", "token"), prof("anthropic:me@x", "oauth")]

# --- round robin ------------------------------------------------------------

test_oauth_before_token_before_api_key if {
	d := select.decision with input as req(three)
	d.candidates == ["anthropic:me@x", "anthropic:tok", "anthropic:key"]
	d.cooling == []
	d.strict == false
}

# Within a type the profiles are of equal rank whatever their lastUsed:
# the gateway serves the least recently used first (rotate), outside the
# decision, so using a profile does not change the decision.
test_one_type_is_of_equal_rank_whatever_its_use if {
	ps := [
		patched(prof("anthropic:a", "token"), {"lastUsed": now - minute}),
		patched(prof("anthropic:b", "token"), {"lastUsed": now - (2 * minute)}),
		prof("anthropic:c", "token"),
	]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:a", "anthropic:b", "anthropic:c"]
	d.rotate == 3
	d.reasons["anthropic:c"] == "candidate: round robin, a token profile (oauth, then token, then api_key; least recently used first)"
	d2 := select.decision with input as req([ps[0], patched(ps[1], {"lastUsed": now}), ps[2]])
	d2 == d
}

test_ties_broken_by_id if {
	ps := [prof("anthropic:z", "api_key"), prof("anthropic:a", "api_key"), prof("anthropic:m", "api_key")]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:a", "anthropic:m", "anthropic:z"]
}

test_type_outranks_recency if {
	ps := [prof("anthropic:key", "api_key"), patched(prof("anthropic:tok", "token"), {"lastUsed": now})]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:tok", "anthropic:key"]
}

test_no_profiles if {
	d := select.decision with input as req([])
	d == {"candidates": [], "cooling": [], "strict": false, "reasons": {}, "rotate": 0}
}

# --- explicit order ---------------------------------------------------------

test_store_order_kept_as_given_and_others_unused if {
	inp := with_order(req(three), "store", ["anthropic:key", "anthropic:tok"])
	d := select.decision with input as inp
	d.candidates == ["anthropic:key", "anthropic:tok"]
	d.reasons["anthropic:key"] == "candidate: position 1 in the agent store's explicit order"
	d.reasons["anthropic:me@x"] == "not used: not in the agent store's explicit order"
}

test_config_order_used_when_store_order_empty if {
	inp := with_order(req(three), "config", ["anthropic:tok"])
	d := select.decision with input as inp
	d.candidates == ["anthropic:tok"]
	d.reasons["anthropic:key"] == "not used: not in the config's auth.order"
}

test_store_order_wins_over_config_order if {
	inp := with_order(with_order(req(three), "config", ["anthropic:tok"]), "store", ["anthropic:key"])
	d := select.decision with input as inp
	d.candidates == ["anthropic:key"]
}

test_null_orders_mean_round_robin if {
	inp := object.union(req(three), {"order": {"store": null, "config": null}})
	d := select.decision with input as inp
	d.candidates == ["anthropic:me@x", "anthropic:tok", "anthropic:key"]
}

test_order_ignores_unknown_and_repeated_ids if {
	inp := with_order(req(three), "store", ["anthropic:gone", "anthropic:tok", "anthropic:key", "anthropic:tok"])
	d := select.decision with input as inp
	d.candidates == ["anthropic:tok", "anthropic:key"]
	d.reasons["anthropic:tok"] == "candidate: position 2 in the agent store's explicit order"
}

test_explicit_order_skips_cooling_profiles if {
	ps := [prof("anthropic:a", "token"), patched(prof("anthropic:b", "token"), {"cooldownUntil": now + minute})]
	inp := with_order(req(ps), "store", ["anthropic:b", "anthropic:a"])
	d := select.decision with input as inp
	d.candidates == ["anthropic:a"]
	d.cooling == ["anthropic:b"]
}

test_cooling_profile_outside_order_is_not_listed if {
	ps := [prof("anthropic:a", "token"), patched(prof("anthropic:b", "token"), {"cooldownUntil": now + minute})]
	d := select.decision with input as with_order(req(ps), "store", ["anthropic:a"])
	d.cooling == []
	d.reasons["anthropic:b"] == "not used: not in the agent store's explicit order"
}

# --- cooldowns and disables -------------------------------------------------

test_cooldown_is_not_a_candidate if {
	ps := [prof("anthropic:a", "token"), patched(prof("anthropic:b", "oauth"), {"cooldownUntil": now + minute})]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:a"]
	d.cooling == ["anthropic:b"]
	d.reasons["anthropic:b"] == "in cooldown until 2025-11-25T01:01:00Z"
}

test_cooldown_ends_at_its_time if {
	ps := [patched(prof("anthropic:b", "oauth"), {"cooldownUntil": now})]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:b"]
}

test_cooling_sorted_soonest_recovery_first if {
	ps := [
		patched(prof("anthropic:a", "token"), {"cooldownUntil": now + (3 * minute)}),
		patched(prof("anthropic:b", "token"), {"disabledUntil": now + minute, "disabledReason": "billing"}),
		patched(prof("anthropic:c", "token"), {"cooldownUntil": now + minute, "disabledUntil": now + (5 * minute)}),
	]
	d := select.decision with input as req(ps)
	d.candidates == []
	d.cooling == ["anthropic:b", "anthropic:a", "anthropic:c"]
	d.reasons["anthropic:b"] == "disabled until 2025-11-25T01:01:00Z (billing)"
	d.reasons["anthropic:c"] == "in cooldown until 2025-11-25T01:01:00Z; disabled until 2025-11-25T01:05:00Z"
}

test_model_scoped_cooldown_only_blocks_that_model if {
	p := patched(prof("anthropic:a", "token"), {"cooldownUntil": now + minute, "cooldownModel": "claude-opus-5"})
	d := select.decision with input as req([p])
	d.candidates == ["anthropic:a"]
	inp := object.union(req([p]), {"request": {"model": "claude-opus-5"}})
	d2 := select.decision with input as inp
	d2.cooling == ["anthropic:a"]
	d2.reasons["anthropic:a"] == "in cooldown for model claude-opus-5 until 2025-11-25T01:01:00Z"
}

test_disabled_until_further_notice if {
	p := patched(prof("anthropic:a", "token"), {"disabledUntil": 9223372036854775807, "disabledReason": "auth"})
	d := select.decision with input as req([p])
	d.reasons["anthropic:a"] == "disabled until further notice (auth)"
}

# --- unusable credentials ---------------------------------------------------

test_unusable_statuses_are_excluded if {
	every status in ["expired", "invalid", "missing"] {
		p := patched(prof("anthropic:a", "token"), {"status": status})
		d := select.decision with input as req([p])
		d.candidates == []
		d.cooling == []
		startswith(d.reasons["anthropic:a"], "not usable: ")
		endswith(d.reasons["anthropic:a"], sprintf("(status %s)", [status]))
	}
}

test_usable_statuses_are_candidates if {
	every status in ["ok", "static", "expiring"] {
		p := patched(prof("anthropic:a", "token"), {"status": status})
		d := select.decision with input as req([p])
		d.candidates == ["anthropic:a"]
	}
}

test_token_past_expiry_is_excluded if {
	p := patched(prof("anthropic:a", "token"), {"expiresAt": now})
	d := select.decision with input as req([p])
	d.candidates == []
	d.reasons["anthropic:a"] == "not usable: the token expired at 2025-11-25T01:00:00Z"
}

test_oauth_past_access_expiry_is_refreshable if {
	p := patched(prof("anthropic:a", "oauth"), {"expiresAt": now - minute})
	d := select.decision with input as req([p])
	d.candidates == ["anthropic:a"]
}

# --- session pins -----------------------------------------------------------

test_user_pin_is_the_only_candidate_and_strict if {
	d := select.decision with input as with_pin(req(three), "anthropic:key", "user")
	d.candidates == ["anthropic:key"]
	d.strict == true
	d.reasons["anthropic:key"] == "candidate: pinned by the user for this session (strict: no failover)"
	d.reasons["anthropic:tok"] == "not used: the session is pinned to anthropic:key by the user"
}

test_user_pin_in_cooldown_leaves_no_candidate if {
	ps := [patched(prof("anthropic:a", "token"), {"cooldownUntil": now + minute}), prof("anthropic:b", "token")]
	d := select.decision with input as with_pin(req(ps), "anthropic:a", "user")
	d.candidates == []
	d.strict == true
	d.cooling == ["anthropic:a"]
	d.reasons["anthropic:a"] == "pinned by the user (strict) but in cooldown until 2025-11-25T01:01:00Z"
}

test_user_pin_denied_leaves_no_candidate if {
	d := select.decision with input as with_pin(req(three), "anthropic:key", "user")
		with data.opensoul.rules.deny as {{"profile": "anthropic:key", "reason": "no metered keys"}}
	d.candidates == []
	d.strict == true
	d.reasons["anthropic:key"] == "pinned by the user (strict) but denied: no metered keys"
}

test_user_pin_to_missing_profile if {
	d := select.decision with input as with_pin(req(three), "anthropic:gone", "user")
	d.candidates == []
	d.strict == true
	d.reasons["anthropic:gone"] == "pinned by the user (strict) but there is no profile anthropic:gone for provider anthropic"
}

test_user_pin_for_another_provider_is_ignored if {
	d := select.decision with input as with_pin(req(three), "openai:default", "user")
	d.candidates == ["anthropic:me@x", "anthropic:tok", "anthropic:key"]
	d.strict == false
	not d.reasons["openai:default"]
}

test_user_pin_beats_explicit_order if {
	inp := with_pin(with_order(req(three), "store", ["anthropic:tok"]), "anthropic:key", "user")
	d := select.decision with input as inp
	d.candidates == ["anthropic:key"]
}

test_user_pin_beats_prefer if {
	d := select.decision with input as with_pin(req(three), "anthropic:key", "user")
		with data.opensoul.rules.prefer as {"anthropic:tok"}
	d.candidates == ["anthropic:key"]
}

test_auto_pin_moves_first if {
	d := select.decision with input as with_pin(req(three), "anthropic:key", "auto")
	d.candidates == ["anthropic:key", "anthropic:me@x", "anthropic:tok"]
	d.strict == false
	d.reasons["anthropic:key"] == "auto pin of session s1 (last profile that succeeded); candidate: round robin, an api_key profile (oauth, then token, then api_key; least recently used first)"
}

test_auto_pin_ignored_in_a_new_session if {
	inp := object.union(with_pin(req(three), "anthropic:key", "auto"), {"session": {"new": true}})
	d := select.decision with input as inp
	d.candidates == ["anthropic:me@x", "anthropic:tok", "anthropic:key"]
}

test_auto_pin_in_cooldown_is_not_used if {
	ps := [patched(prof("anthropic:a", "oauth"), {"cooldownUntil": now + minute}), prof("anthropic:b", "token")]
	d := select.decision with input as with_pin(req(ps), "anthropic:a", "auto")
	d.candidates == ["anthropic:b"]
	d.cooling == ["anthropic:a"]
}

test_auto_pin_outside_explicit_order_is_not_used if {
	inp := with_pin(with_order(req(three), "store", ["anthropic:tok"]), "anthropic:key", "auto")
	d := select.decision with input as inp
	d.candidates == ["anthropic:tok"]
}

# --- rules.deny and rules.prefer --------------------------------------------

test_deny_removes_with_reason if {
	d := select.decision with input as req(three)
		with data.opensoul.rules.deny as {
			{"profile": "anthropic:tok", "reason": "b"},
			{"profile": "anthropic:tok", "reason": "a"},
			{"profile": "anthropic:unknown", "reason": "ignored"},
		}
	d.candidates == ["anthropic:me@x", "anthropic:key"]
	d.cooling == []
	d.reasons["anthropic:tok"] == "denied: a; b"
	not d.reasons["anthropic:unknown"]
}

test_deny_accepts_bare_ids if {
	d := select.decision with input as req(three) with data.opensoul.rules.deny as {"anthropic:key"}
	d.candidates == ["anthropic:me@x", "anthropic:tok"]
	d.reasons["anthropic:key"] == "denied: denied by data.opensoul.rules.deny"
}

test_denied_cooling_profile_is_not_listed_as_cooling if {
	ps := [patched(prof("anthropic:a", "token"), {"cooldownUntil": now + minute})]
	d := select.decision with input as req(ps) with data.opensoul.rules.deny as {{"profile": "anthropic:a", "reason": "no"}}
	d.cooling == []
	d.reasons["anthropic:a"] == "denied: no"
}

test_prefer_moves_ahead if {
	d := select.decision with input as req(three) with data.opensoul.rules.prefer as {"anthropic:key"}
	d.candidates == ["anthropic:key", "anthropic:me@x", "anthropic:tok"]
	d.reasons["anthropic:key"] == "preferred by data.opensoul.rules.prefer; candidate: round robin, an api_key profile (oauth, then token, then api_key; least recently used first)"
}

test_prefer_keeps_base_order_among_preferred if {
	d := select.decision with input as req(three) with data.opensoul.rules.prefer as {"anthropic:key", "anthropic:tok"}
	d.candidates == ["anthropic:tok", "anthropic:key", "anthropic:me@x"]
}

test_prefer_goes_ahead_of_auto_pin if {
	d := select.decision with input as with_pin(req(three), "anthropic:me@x", "auto")
		with data.opensoul.rules.prefer as {"anthropic:key"}
	d.candidates == ["anthropic:key", "anthropic:me@x", "anthropic:tok"]
}

test_prefer_within_explicit_order if {
	inp := with_order(req(three), "store", ["anthropic:tok", "anthropic:key"])
	d := select.decision with input as inp with data.opensoul.rules.prefer as {"anthropic:key", "anthropic:me@x"}
	d.candidates == ["anthropic:key", "anthropic:tok"]
}

test_prefer_does_not_revive_cooling_profiles if {
	ps := [prof("anthropic:a", "token"), patched(prof("anthropic:b", "token"), {"cooldownUntil": now + minute})]
	d := select.decision with input as req(ps) with data.opensoul.rules.prefer as {"anthropic:b"}
	d.candidates == ["anthropic:a"]
	d.cooling == ["anthropic:b"]
}

# --- reasons ----------------------------------------------------------------

test_every_profile_has_a_reason if {
	ps := array.concat(three, [
		patched(prof("anthropic:cool", "token"), {"cooldownUntil": now + minute}),
		patched(prof("anthropic:dead", "token"), {"status": "expired"}),
	])
	inp := with_pin(with_order(req(ps), "config", ["anthropic:tok", "anthropic:cool", "anthropic:dead"]), "anthropic:tok", "auto")
	d := select.decision with input as inp with data.opensoul.rules.deny as {{"profile": "anthropic:key", "reason": "x"}}
	every p in ps {
		is_string(d.reasons[p.id])
	}
	count(d.reasons) == count(ps)
}

test_sparse_profiles_are_handled if {
	ps := [
		{"id": "anthropic:a", "type": "token", "status": "ok"},
		{"id": "anthropic:b", "type": "oauth", "status": "ok", "cooldownUntil": now + minute},
		{"id": "anthropic:c"},
		{"id": "anthropic:d", "type": "token", "status": "weird"},
	]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:a"]
	d.cooling == ["anthropic:b"]
	d.reasons["anthropic:c"] == "not usable: unknown credential type null"
	d.reasons["anthropic:d"] == "not usable: unknown status weird"
}

# --- rotate: the leading candidates of equal rank ----------------------------

test_rotate_counts_the_first_type if {
	ps := [
		prof("anthropic:o1", "oauth"), prof("anthropic:o2", "oauth"),
		patched(prof("anthropic:o3", "oauth"), {"cooldownUntil": now + minute}),
		prof("anthropic:t1", "token"), prof("anthropic:k1", "api_key"),
	]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:o1", "anthropic:o2", "anthropic:t1", "anthropic:k1"]
	d.rotate == 2
}

test_rotate_all_of_one_type if {
	ps := [prof("anthropic:a", "api_key"), prof("anthropic:b", "api_key"), prof("anthropic:c", "api_key")]
	d := select.decision with input as req(ps)
	d.rotate == 3
}

test_rotate_one_under_an_explicit_order if {
	inp := with_order(req(three), "store", ["anthropic:key", "anthropic:tok"])
	d := select.decision with input as inp
	d.rotate == 1
}

test_rotate_one_with_an_auto_pin if {
	ps := [prof("anthropic:a", "api_key"), prof("anthropic:b", "api_key")]
	d := select.decision with input as with_pin(req(ps), "anthropic:b", "auto")
	d.candidates == ["anthropic:b", "anthropic:a"]
	d.rotate == 1
}

test_rotate_one_with_a_preference if {
	ps := [prof("anthropic:a", "api_key"), prof("anthropic:b", "api_key")]
	d := select.decision with input as req(ps) with data.opensoul.rules.prefer as {"anthropic:b"}
	d.candidates == ["anthropic:b", "anthropic:a"]
	d.rotate == 1
}

test_rotate_one_under_a_user_pin if {
	ps := [prof("anthropic:a", "api_key"), prof("anthropic:b", "api_key")]
	d := select.decision with input as with_pin(req(ps), "anthropic:b", "user")
	d.candidates == ["anthropic:b"]
	d.rotate == 1
}

test_rotate_zero_without_candidates if {
	ps := [patched(prof("anthropic:a", "api_key"), {"status": "invalid"})]
	d := select.decision with input as req(ps)
	d.candidates == []
	d.rotate == 0
}

# --- client scope -------------------------------------------------------------
# (Clients here are interactive ones: the policy tests also run with the
# examples loaded, and interactive_tokens.rego denies tokens to the others.)

from_client(x, name) := object.union(x, {"request": {"client": {"name": name, "version": "1.0.0"}}})

scoped_two := [
	patched(prof("anthropic:sub", "token"), {"scope": "claude-code"}),
	prof("anthropic:key", "api_key"),
]

test_a_scoped_profile_serves_its_client if {
	d := select.decision with input as from_client(req(scoped_two), "claude-code")
	d.candidates == ["anthropic:sub", "anthropic:key"]
}

test_a_scoped_profile_is_skipped_for_other_clients_with_a_reason if {
	d := select.decision with input as from_client(req(scoped_two), "codex")
	d.candidates == ["anthropic:key"]
	d.cooling == []
	d.reasons["anthropic:sub"] == "not usable here: the provider accepts this credential from claude-code only, and this request is from codex"
}

test_a_scoped_profile_is_skipped_without_a_client if {
	d := select.decision with input as req(scoped_two)
	d.candidates == ["anthropic:key"]
	d.reasons["anthropic:sub"] == "not usable here: the provider accepts this credential from claude-code only, and this request is from an unidentified client"
}

test_a_null_scope_serves_every_client if {
	ps := [patched(prof("anthropic:sub", "token"), {"scope": null}), prof("anthropic:key", "api_key")]
	d := select.decision with input as from_client(req(ps), "openclaw")
	d.candidates == ["anthropic:sub", "anthropic:key"]
}

test_a_scoped_profile_in_the_explicit_order_is_still_skipped if {
	x := with_order(from_client(req(scoped_two), "codex"), "store", ["anthropic:sub", "anthropic:key"])
	d := select.decision with input as x
	d.candidates == ["anthropic:key"]
	startswith(d.reasons["anthropic:sub"], "not usable here: the provider accepts this credential from claude-code only")
}

# --- limits (rate-limit headers the provider reported) ------------------------

# Within a type the profile with the most headroom goes first; equal
# headroom is equal rank (rotate); unknown headroom counts as full.
test_most_headroom_first if {
	ps := [
		patched(prof("anthropic:a", "api_key"), {"limits": {"headroom": 0.2, "status": "allowed", "resetAt": 0}}),
		patched(prof("anthropic:b", "api_key"), {"limits": {"headroom": 0.7, "status": "allowed", "resetAt": 0}}),
		patched(prof("anthropic:c", "api_key"), {"limits": {"headroom": 0.7, "status": "warning", "resetAt": 0}}),
		patched(prof("anthropic:d", "api_key"), {"limits": null}),
		prof("anthropic:tok", "token"),
	]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:tok", "anthropic:d", "anthropic:b", "anthropic:c", "anthropic:a"]
	d.rotate == 1
	d2 := select.decision with input as req(array.slice(ps, 0, 3))
	d2.candidates == ["anthropic:b", "anthropic:c", "anthropic:a"]
	d2.rotate == 2
}

# A provider's "rejected until T" cools the profile until T, no request spent.
test_rejected_cools_until_reset if {
	ps := [
		patched(prof("anthropic:a", "api_key"), {"limits": {"headroom": 0, "status": "rejected", "resetAt": now + minute}}),
		prof("anthropic:b", "api_key"),
	]
	d := select.decision with input as req(ps)
	d.candidates == ["anthropic:b"]
	d.cooling == ["anthropic:a"]
	d.reasons["anthropic:a"] == "rejected by the provider's rate limit until 2025-11-25T01:01:00Z"
	later := select.decision with input as object.union(req(ps), {"now": now + minute})
	later.candidates == ["anthropic:b", "anthropic:a"]
}

# --- classes (one per profile; the engine caches them per profile) ----------

test_classes_round_robin if {
	ps := [
		prof("anthropic:key", "api_key"),
		patched(prof("anthropic:tok", "token"), {"cooldownUntil": now + minute}),
		patched(prof("anthropic:bad", "oauth"), {"status": "invalid"}),
		patched(prof("anthropic:me@x", "oauth"), {"limits": {"headroom": 0.5, "status": "allowed", "resetAt": 0}}),
	]
	c := select.classes with input as req(ps)
	c["anthropic:key"] == {"state": "candidate", "key": [2, -1], "out": "", "reason": "candidate: round robin, an api_key profile (oauth, then token, then api_key; least recently used first)"}
	c["anthropic:me@x"].key == [0, -0.5]
	c["anthropic:tok"] == {"state": "cooling", "until": now + minute, "out": "", "reason": "in cooldown until 2025-11-25T01:01:00Z"}
	c["anthropic:bad"] == {"state": "skipped", "out": "", "reason": "not usable: the credential is invalid (status invalid)"}
}

test_classes_explicit_order if {
	inp := with_order(req(three), "config", ["anthropic:tok", "anthropic:key"])
	c := select.classes with input as inp
	c["anthropic:tok"].key == [0]
	c["anthropic:key"] == {"state": "candidate", "key": [1], "out": "", "reason": "candidate: position 2 in the config's auth.order"}
	c["anthropic:me@x"] == {"state": "candidate", "key": null, "out": "not used: not in the config's auth.order", "reason": ""}
}

# A profile's class does not depend on the other profiles or the session:
# classifying it alone, or with a pin elsewhere, gives the same class.
test_classes_are_per_profile if {
	together := select.classes with input as with_pin(req(three), "anthropic:key", "user")
	count(together) == 3
	every p in three {
		alone := select.classes with input as req([p])
		alone[p.id] == together[p.id]
	}
}
