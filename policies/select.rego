# OpenSoul built-in credential selection (DESIGN §4–5).
#
# Decides, for one request, which credential profiles of the request's
# provider may be tried and in what order, and why every other profile is
# not. Evaluated as data.opensoul.select.decision over the §5 input. User
# policies change the outcome through two extension points in package
# opensoul.rules: `deny` (a set of {"profile", "reason"}) and `prefer` (a
# set of profile ids).
#
# Two layers. The per-profile rules (exclusions, cooldowns, sort keys and
# their reasons) decide each profile's class from that profile's facts and
# a small request context only: input.now, input.request.model and
# input.request.client.name, input.order, and the user rules' deny naming
# it. `classes` collects them, one per profile. The profile's id itself
# matters only through its position in the explicit order (and a deny):
# no class text names it, so the engine classifies profiles of equal facts
# once (TestClassKeyNoticesEveryField renames every profile to hold this). The decision layer then
# orders the candidates and applies the session's pins and the
# preferences; it reads the same per-profile rules directly (going through
# `classes` would cost the whole evaluation extra passes).
#
# The split is what keeps uncached decisions cheap: while only the
# built-in policies are loaded, the engine (policy/split.go) evaluates
# `classes` over just the profiles whose facts or context changed since it
# last classified them, and assembles the decision from the classes in Go
# exactly as `decision` below does (TestSplitDecides holds the two equal on
# random inputs; TestClassKeyNoticesEveryField changes every input field
# and fails if a class changes while the engine would keep it). With a
# user policy loaded, every decision is this whole evaluation. So a rule
# that makes one profile's class depend on another profile, or on another
# input field, belongs in the decision layer, and the Go assembly
# (assemble in policy/split.go) must learn it too.
#
# Time: input.now is compared only with cooldownUntil, disabledUntil,
# limits.resetAt and expiresAt, always as `t > input.now` (still active)
# or `t <= input.now` (over), and reasons show absolute times only. The Go
# caches rely on this: a decision (or a class) stays valid until the next
# such boundary.
#
# Speed: this runs on every uncached request. Intermediates are complete
# rules (evaluated once per query), built by comprehensions whose filters
# fail fast for the common profile (usable, not cooling, not denied);
# whole profile objects are never copied into new collections. Every rule
# entered costs evaluation steps even when its comprehension finds
# nothing, which is most of what classifying one changed profile costs:
# so the per-profile passes that every classification needs are grouped
# into few rules (excluded, clocks), and rules only cooling profiles
# need are skipped when none cools. `go test -bench DecideSteps ./policy/`
# counts the steps.
package opensoul.select

# ---------------------------------------------------------------------------
# Decision

decision := {
	"candidates": candidates,
	"cooling": cooling,
	"strict": strict,
	"reasons": reasons,
	"rotate": rotate,
}

# A user pin is strict: only the pinned profile, no failover, even when it
# cannot be used right now.
candidates := [user_pin] if {
	ready[user_pin]
} else := [] if {
	user_pin
} else := ranked

default strict := false

strict if user_pin

# Cooling profiles are listed for display, soonest recovery first. Profiles
# outside the explicit order are not listed (they would never be used).
cooling := [x[1] | some x in sort([[t, id] | some id, t in recovery; not hidden[id]])]

hidden := out_of_scope - pinned

# rotate is how many leading candidates are of equal rank: the gateway
# serves the least recently used of them first (by its own record of what
# it handed out, outside this decision, which therefore stays cached while
# requests rotate). In round robin every candidate of the first one's type
# is equal; a pin, a preference or an explicit order ranks each candidate
# on its own.
default rotate := 0

rotate := n if {
	not user_pin
	not order_source
	count(preferred) == 0
	count(auto_first) == 0
	keys := round_robin_keys
	top := sorted_keys[0]
	n := count([1 | some k in keys; k[0] == top[0]; k[1] == top[1]])
} else := 1 if count(candidates) > 0

# ---------------------------------------------------------------------------
# Classes: one per profile, {"state", "reason", "out"} plus "until" or "key":
#   state  "skipped" (not usable now), "cooling" (usable from until) or
#          "candidate" (usable now, sorted by [key, id])
#   reason why it is skipped or cooling, or where its key puts it
#   out    "" within the explicit order (or without one), else why unused
#   key    [position] in the explicit order; in round robin [type rank,
#          -headroom], and the candidates with the first one's key are of
#          equal rank (rotate); null outside the explicit order.

classes := object.union_n([skipped, cooling, candidate_classes]) if {
	out := out_texts
	skipped := {id: {"state": "skipped", "reason": r, "out": object.get(out, id, "")} | some id, r in excluded}
	why := cooling_reasons
	cooling := {id: {"state": "cooling", "until": t, "reason": why[id], "out": object.get(out, id, "")} | some id, t in recovery}
}

# The candidates' classes, built straight from what orders them (the
# explicit order's positions, or the round robin keys) rather than from
# base and plain_reasons: classifying a few profiles then visits fewer
# rules. The reasons are plain_reasons'.
candidate_classes := object.union(in_order, outside) if {
	order_source
	pos := order_index
	label := order_label
	in_order := {id: {"state": "candidate", "key": [i], "reason": sprintf("candidate: position %d in %s", [i + 1, label]), "out": ""} |
		some id in ready
		i := pos[id]
	}
	out := out_texts
	outside := {id: {"state": "candidate", "key": null, "reason": "", "out": out[id]} |
		some id in ready
		not pos[id]
	}
} else := cs if {
	# round_robin_keys' keys, computed here from the profiles (not
	# through round_robin_keys) for fewer steps.
	rdy := ready
	ranks := type_ranks
	rr := round_robin_text
	cs := {p.id: {"state": "candidate", "key": [r, 0 - object.get(p, ["limits", "headroom"], 1)], "reason": rr[r], "out": ""} |
		some p in input.profiles
		rdy[p.id]
		r := ranks[p.type]
	}
}

out_texts := {id: sprintf("not used: not in %s", [order_label]) | some id in out_of_scope}

# texts are the decision layer's phrases (sprintf formats); the engine's Go
# assembly reads them from here.
texts := {
	"user_pin": "candidate: pinned by the user for this session (strict: no failover)",
	"pin_but": "pinned by the user (strict) but %s",
	"pin_missing": "pinned by the user (strict) but there is no profile %s for provider %s",
	"pinned_elsewhere_why": "%s; the session is pinned to %s by the user",
	"pinned_elsewhere": "not used: the session is pinned to %s by the user",
	"auto": "auto pin of session %s (last profile that succeeded)",
	"prefer": "preferred by data.opensoul.rules.prefer",
}

# ---------------------------------------------------------------------------
# Facts

# index maps a profile id to its position in input.profiles.
index := {p.id: i | some i, p in input.profiles}

# user_pin is the profile the user pinned for this session (/model …@id),
# when it belongs to the request's provider.
user_pin := id if {
	input.session.pin.source == "user"
	id := input.session.pin.profile
	for_provider(id)
}

for_provider(id) if index[id] >= 0

for_provider(id) if {
	not index[id]
	startswith(id, concat("", [input.request.provider, ":"]))
}

pinned := {id | id := user_pin}

# auto_pin is the profile that last succeeded in this session; a new (or
# reset) session has none.
auto_pin := id if {
	input.session.pin.source == "auto"
	not input.session.new
	id := input.session.pin.profile
}

# ---------------------------------------------------------------------------
# Explicit order: the agent store's order, else the config's auth.order.

order_source := "store" if count(input.order.store) > 0
else := "config" if count(input.order.config) > 0

order_label := {
	"store": "the agent store's explicit order",
	"config": "the config's auth.order",
}[order_source]

explicit := input.order[order_source]

# Position of each id in the explicit order (its first occurrence). Only an
# order that repeats an id needs the quadratic first-occurrence test.
order_index := {id: i | some i, id in explicit; is_string(id)} if {
	count({id | some id in explicit}) == count(explicit)
} else := {id: i |
	some i, id in explicit
	is_string(id)
	not id in array.slice(explicit, 0, i)
}

out_of_scope := {p.id | order_source; some p in input.profiles; not order_index[p.id]}

# ---------------------------------------------------------------------------
# Hard exclusions: an unusable credential, one the provider accepts from
# another client only (scope), or a user rule's deny.

# usable[type][status] holds for the credential types the gateway can use
# and the statuses that allow it. Anything else is flagged and excluded.
usable := {
	"oauth": {"ok": true, "static": true, "expiring": true},
	"token": {"ok": true, "static": true, "expiring": true},
	"api_key": {"ok": true, "static": true, "expiring": true},
}

status_text := {
	"expired": "the credential has expired",
	"invalid": "the credential is invalid",
	"missing": "the credential is missing",
}

# excluded is one rule holding the four kinds of exclusion below (later
# ones win where two apply), as every classification evaluates all four
# and each rule entered costs evaluation steps.
#
# bad_status: the profiles whose type and status do not allow use (a
# profile missing either field is not usable). The test fails for the
# common, usable profile, which is cheaper than a positive test plus a set
# difference.
#
# token_expired: a setup token cannot be refreshed; an OAuth access token
# can, so only the status (set by whoever knows whether a refresh is
# possible) excludes it.
#
# client_scoped: a credential the provider accepts from one client only
# (its scope, learned from the provider's answer) serves that client's
# requests only.
excluded := object.union_n([bad_status, token_expired, client_scoped, denied]) if {
	u := usable
	bad_status := {p.id: unusable_text(p) | some p in input.profiles; not u[object.get(p, "type", null)][object.get(p, "status", null)]}
	token_expired := {p.id: sprintf("not usable: the token expired at %s", [fmt_time(p.expiresAt)]) |
		some p in input.profiles
		p.type == "token"
		p.expiresAt <= input.now
		is_number(p.expiresAt)
		not bad_status[p.id]
	}
	client_scoped := {p.id: sprintf("not usable here: the provider accepts this credential from %s only, and this request is from %s", [p.scope, client_text]) |
		some p in input.profiles
		is_string(p.scope)
		p.scope != client_name
		p.scope != ""
		not bad_status[p.id]
		not token_expired[p.id]
	}

	# denied: a user rule's deny (nothing without user rules).
	denies := [d | some d in data.opensoul.rules.deny]
	denied := {id: sprintf("denied: %s", [concat("; ", sort(rs))]) |
		some d0 in denies
		id := deny_id(d0)
		index[id] >= 0
		not bad_status[id]
		not token_expired[id]
		rs := {deny_reason(d) | some d in denies; deny_id(d) == id}
	}
}

unusable_text(p) := sprintf("not usable: unknown credential type %v", [t]) if {
	t := object.get(p, "type", null)
	not usable[t]
} else := sprintf("not usable: %s (status %s)", [status_text[s], s]) if {
	s := object.get(p, "status", null)
	status_text[s]
} else := sprintf("not usable: unknown status %v", [object.get(p, "status", null)])

client_name := object.get(input, ["request", "client", "name"], "")

client_text := client_name if client_name != ""
else := "an unidentified client"

deny_id(d) := d.profile if is_object(d)

deny_id(d) := d if is_string(d)

deny_reason(d) := d.reason if {
	is_object(d)
	is_string(d.reason)
} else := "denied by data.opensoul.rules.deny"

# ---------------------------------------------------------------------------
# Cooldowns: recovery[id] is when a cooling profile can be used again.

# clocks are [cooldown_until, disabled_until, limit_until], each mapping the
# profiles it makes cool to when that ends; one rule, as every
# classification evaluates all three. (The clock and the request's model
# are bound once: a local is cheaper than an input reference in the loop.)
#
# A cooldown scoped to a model only blocks requests for that model. A
# provider that said "no more until T" (limits.status rejected, from its
# rate-limit headers) makes the profile cool until T without a request
# spent on finding out.
default clocks := [{}, {}, {}]

clocks := [cooldown_until, disabled_until, limit_until] if {
	now := input.now
	models := {null, "", input.request.model}
	cooldown_until := {p.id: t |
		some p in input.profiles
		p.cooldownUntil > now
		t := p.cooldownUntil
		is_number(t)
		object.get(p, "cooldownModel", null) in models
	}
	disabled_until := {p.id: t |
		some p in input.profiles
		p.disabledUntil > now
		t := p.disabledUntil
		is_number(t)
	}
	limit_until := {p.id: t |
		some p in input.profiles
		l := p.limits
		is_object(l)
		l.status == "rejected"
		t := l.resetAt
		is_number(t)
		t > now
	}
}

# recovery is each clock's end where a profile cools by one clock only
# (the common case): then the clock maps are joined and the excluded
# profiles removed by builtins, with no evaluation step per cooling
# profile, which is most of a cooling profile's classification. A profile
# that cools by two or three clocks recovers at the latest end.
recovery := {} if {
	clocks == [{}, {}, {}]
} else := object.remove(joined, object.keys(excluded)) if {
	[cd, dis, lim] := clocks
	joined := object.union_n([cd, dis, lim])
	count(joined) == (count(cd) + count(dis)) + count(lim)
} else := r if {
	[cd, dis, lim] := clocks
	ex := excluded
	r := {id: max([object.get(cd, id, 0), object.get(dis, id, 0), object.get(lim, id, 0)]) |
		some id, _ in object.union_n([cd, dis, lim])
		not ex[id]
	}
}

ready := (object.keys(index) - object.keys(excluded)) - object.keys(recovery)

# ---------------------------------------------------------------------------
# Ordering

# base is the order before pins and preferences: the explicit order as
# given, else OAuth before token before api_key, and within a type the
# most headroom first (limits.headroom, in tenths; unknown counts as
# full), then by id. The profiles of one type and headroom are of equal
# rank (see rotate): which of them goes first is the gateway's round
# robin, least recently used first, so this policy never reads lastUsed
# and a profile's use does not change it.
base := [id | some i, id in explicit; order_index[id] == i; ready[id]] if order_source
else := [x[2] | some x in sorted_keys]

sorted_keys := sort(round_robin_keys)

round_robin_keys := keys if {
	# Rules bound to locals once: a local lookup is much cheaper than a
	# reference to a rule inside the loop.
	rdy := ready
	ranks := type_ranks
	# limits.headroom: the share of the tightest window left (0..1); 1
	# when the provider has not said (limits null).
	keys := [[ranks[p.type], 0 - object.get(p, ["limits", "headroom"], 1), p.id] |
		some p in input.profiles
		rdy[p.id]
	]
}

type_ranks := {"oauth": 0, "token": 1, "api_key": 2}

preferred := {id: 0 | some id in data.opensoul.rules.prefer; is_string(id)}

# The auto pin counts only while it is usable and within the explicit order.
auto_first := {id: 0 | id := auto_pin; ready[id]; not out_of_scope[id]}

# Preferred profiles first, then the session's auto pin, then the rest, each
# group in base order.
ranked := base if {
	count(preferred) == 0
	count(auto_first) == 0
} else := array.concat([pin], [id | some id in base; id != pin]) if {
	count(preferred) == 0
	pin := auto_pin
	auto_first[pin] == 0
} else := [x[3] | some x in sort([[object.get(preferred, id, 1), object.get(auto_first, id, 1), i, id] | some i, id in base])]

# ---------------------------------------------------------------------------
# Reasons: one for every profile of the input (and for a pinned id that
# names no profile). Each group covers profiles no other group does.

reasons := object.union_n([
	candidate_reasons,
	pin_reason,
	missing_pin_reason,
	out_of_scope_reasons,
	unchosen_reasons,
])

candidate_reasons := {id: texts.user_pin |
	some id in candidates
} if user_pin else := object.union(plain_reasons, {id: concat("; ", tags) |
	some id in special
	id in candidates
	tags := [t | some t in [object.get(prefer_text, id, ""), object.get(auto_text, id, ""), plain_reasons[id]]; t != ""]
})

special := object.keys(preferred) | object.keys(auto_first)

# plain_reasons says why each candidate is where the base order put it.
plain_reasons := {id: sprintf("candidate: position %d in %s", [i + 1, order_label]) |
	some id in base
	i := order_index[id]
} if order_source else := texts if {
	rr := round_robin_text
	texts := {id: rr[r] | some [r, _, id] in round_robin_keys}
}

round_robin_text := [
	"candidate: round robin, an oauth profile (oauth, then token, then api_key; least recently used first)",
	"candidate: round robin, a token profile (oauth, then token, then api_key; least recently used first)",
	"candidate: round robin, an api_key profile (oauth, then token, then api_key; least recently used first)",
]

pin_reason := {id: sprintf(texts.pin_but, [why_not[id]]) |
	id := user_pin
	why_not[id]
}

missing_pin_reason := {id: sprintf(texts.pin_missing, [id, input.request.provider]) |
	id := user_pin
	not index[id]
}

out_of_scope_reasons := {id: r |
	some id, r in out_texts
	not pinned[id]
}

# Profiles in scope that are neither candidates nor the user pin.
unchosen_reasons := {id: why_not[id] |
	some id, _ in why_not
	not out_of_scope[id]
} if not user_pin else := {p.id: pinned_elsewhere(p.id) |
	some p in input.profiles
	not pinned[p.id]
	not out_of_scope[p.id]
}

pinned_elsewhere(id) := sprintf(texts.pinned_elsewhere_why, [why_not[id], user_pin]) if {
	why_not[id]
} else := sprintf(texts.pinned_elsewhere, [user_pin])

why_not := object.union(excluded, cooling_reasons)

# cooling_reasons says why each cooling profile cools: the phrases of its
# clocks, in one rule. The phrase maps hold one-element arrays, so that
# joining a profile's phrases needs no comprehension. Without cooling profiles (the common
# case) the phrase rules are not evaluated at all.
default cooling_reasons := {}

cooling_reasons := rs if {
	count(recovery) > 0
	[cd_until, dis_until, lim_until] := clocks
	idx := index
	cd := {id: [cooldown_phrase(m, fmt_time(t))] |
		some id, t in cd_until
		m := object.get(input.profiles[idx[id]], "cooldownModel", null)
	}
	dis := {id: [disabled_phrase(r, fmt_time(t))] |
		some id, t in dis_until
		r := object.get(input.profiles[idx[id]], "disabledReason", null)
	}
	lim := {id: [sprintf("rejected by the provider's rate limit until %s", [fmt_time(t)])] | some id, t in lim_until}
	rs := {id: concat("; ", array.concat(array.concat(object.get(cd, id, []), object.get(dis, id, [])), object.get(lim, id, []))) |
		some id, _ in recovery
	}
}

cooldown_phrase(m, at) := sprintf("in cooldown for model %s until %s", [m, at]) if {
	is_string(m)
	m != ""
} else := sprintf("in cooldown until %s", [at])

disabled_phrase(r, at) := sprintf("disabled until %s (%s)", [at, r]) if {
	is_string(r)
	r != ""
} else := sprintf("disabled until %s", [at])

prefer_text := {id: texts.prefer | some id, _ in preferred}

auto_text := {id: sprintf(texts.auto, [input.session.id]) | id := auto_pin}

# fmt_time renders epoch ms as RFC 3339 (UTC). Times past what nanoseconds
# in an int64 can hold (year 2262) mean "until further notice".
fmt_time(ms) := time.format(ms * 1000000) if ms < 9000000000000
else := "further notice"
