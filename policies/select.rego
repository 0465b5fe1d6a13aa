# METADATA
# title: OpenSoul built-in credential selection
# description: |
#   Implements DESIGN §4 for one request: which credential profiles of the
#   request's provider may be tried, in what order, and why every other
#   profile is not. Evaluated as data.opensoul.select.decision over the §5
#   input. User policies change the outcome through two extension points in
#   package opensoul.rules: `deny` (set of {"profile", "reason"}) and
#   `prefer` (set of profile ids).
#
#   Time: input.now is compared only with cooldownUntil, disabledUntil and
#   expiresAt, always as `t > input.now` (still active) or `t <= input.now`
#   (over), and reasons only show absolute times. The Go decision cache
#   relies on this: a decision stays valid until the next such boundary.
package opensoul.select

# ---------------------------------------------------------------------------
# Decision

decision := {
	"candidates": candidates,
	"cooling": cooling,
	"strict": strict,
	"reasons": reasons,
}

# A user pin is strict: only the pinned profile, no failover, even when it
# cannot be used right now.
candidates := [user_pin] if {
	user_pin
	ready[user_pin]
} else := [] if {
	user_pin
} else := ranked

default strict := false

strict if user_pin

# Cooling profiles are listed for display, soonest recovery first. Profiles
# outside the explicit order are not listed (they would never be used).
cooling := [x[1] | some x in sort([[t, id] | some id, t in recovery; listed(id)])]

listed(id) if in_scope(id)

listed(id) if is_user_pin(id)

# ---------------------------------------------------------------------------
# Facts

profiles := {p.id: p | some p in input.profiles}

# user_pin is the profile the user pinned for this session (/model …@id),
# when it belongs to the request's provider.
user_pin := id if {
	input.session.pin.source == "user"
	id := input.session.pin.profile
	for_provider(id)
}

is_user_pin(id) if id == user_pin

for_provider(id) if profiles[id]

for_provider(id) if {
	not profiles[id]
	startswith(id, concat("", [input.request.provider, ":"]))
}

# auto_pin is the profile that last succeeded in this session; a new (or
# reset) session has none.
auto_pin := id if {
	input.session.pin.source == "auto"
	not input.session.new
	id := input.session.pin.profile
}

# ---------------------------------------------------------------------------
# Explicit order: the agent store's order, else the config's auth.order.

order_source := "store" if nonempty_array(input.order.store)
else := "config" if nonempty_array(input.order.config)

nonempty_array(x) if {
	is_array(x)
	count(x) > 0
}

order_labels := {
	"store": "the agent store's explicit order",
	"config": "the config's auth.order",
}

explicit := input.order[order_source]

# Position of each id in the explicit order (its first occurrence).
order_index[id] := i if {
	some i, id in explicit
	is_string(id)
	i == min({j | explicit[j] == id})
}

in_scope(_) if not order_source

in_scope(id) if _ = order_index[id]

# ---------------------------------------------------------------------------
# Hard exclusions: unusable credential, or denied by a user rule.

unusable_status := {
	"expired": "the credential has expired",
	"invalid": "the credential is invalid",
	"missing": "the credential is missing",
}

excluded[id] := reason if {
	some id, p in profiles
	reason := exclusion(p)
}

exclusion(p) := sprintf("not usable: %s (status %s)", [unusable_status[p.status], p.status]) if {
	unusable_status[p.status]
} else := sprintf("not usable: the token expired at %s", [fmt_time(p.expiresAt)]) if {
	token_expired(p)
} else := sprintf("denied: %s", [concat("; ", sort(deny_reasons[p.id]))]) if {
	deny_reasons[p.id]
}

# A setup token cannot be refreshed; an OAuth access token can, so only the
# status (set by whoever knows whether a refresh is possible) excludes it.
token_expired(p) if {
	p.type == "token"
	is_number(p.expiresAt)
	p.expiresAt <= input.now
}

deny_reasons[id] := {deny_reason(d) | some d in data.opensoul.rules.deny; deny_id(d) == id} if {
	some d0 in data.opensoul.rules.deny
	id := deny_id(d0)
	profiles[id]
}

deny_id(d) := d.profile if is_object(d)

deny_id(d) := d if is_string(d)

deny_reason(d) := d.reason if {
	is_object(d)
	is_string(d.reason)
} else := "denied by data.opensoul.rules.deny"

# ---------------------------------------------------------------------------
# Cooldowns: recovery[id] is when a cooling profile can be used again.

recovery[id] := max(ts) if {
	some id, p in profiles
	not excluded[id]
	ts := {t | t := cooldown_active(p)} | {t | t := disabled_active(p)}
	count(ts) > 0
}

cooldown_active(p) := p.cooldownUntil if {
	is_number(p.cooldownUntil)
	p.cooldownUntil > input.now
	cooldown_applies(p)
}

# A cooldown scoped to a model only blocks requests for that model.
cooldown_applies(p) if not is_string(object.get(p, "cooldownModel", null))

cooldown_applies(p) if p.cooldownModel == ""

cooldown_applies(p) if p.cooldownModel == input.request.model

disabled_active(p) := p.disabledUntil if {
	is_number(p.disabledUntil)
	p.disabledUntil > input.now
}

ready contains id if {
	some id, _ in profiles
	not excluded[id]
	not recovery[id]
}

# ---------------------------------------------------------------------------
# Ordering

# base is the order before pins and preferences: the explicit order as
# given, else OAuth before token before api_key, least recently used first,
# ties broken by id so the result is deterministic.
base := [id | some i, id in explicit; order_index[id] == i; ready[id]] if order_source
else := [x[2] | some x in sort([[type_rank(p), last_used(p), id] | some id in ready; p := profiles[id]])]

type_ranks := {"oauth": 0, "token": 1, "api_key": 2}

type_rank(p) := object.get(type_ranks, object.get(p, "type", ""), 3)

last_used(p) := p.lastUsed if is_number(p.lastUsed) else := 0

preferred := {id | some id in data.opensoul.rules.prefer; is_string(id)}

# Preferred profiles first, then the session's auto pin, then the rest, each
# group in base order.
ranked := [x[3] | some x in sort([[pref_rank(id), auto_rank(id), i, id] | some i, id in base])]

pref_rank(id) := 0 if preferred[id] else := 1

auto_rank(id) := 0 if id == auto_pin else := 1

# ---------------------------------------------------------------------------
# Reasons: one for every profile of the input (and for a pinned id that
# names no profile).

reasons[id] := reason_for(id) if some id, _ in profiles

reasons[id] := sprintf("pinned by the user (strict) but there is no profile %s for provider %s", [id, input.request.provider]) if {
	id := user_pin
	not profiles[id]
}

candidate_pos := {id: i | some i, id in candidates}

reason_for(id) := sprintf("candidate #%d: %s", [candidate_pos[id] + 1, candidate_basis(id)]) if {
	_ = candidate_pos[id]
} else := sprintf("pinned by the user (strict) but %s", [why_not(id)]) if {
	is_user_pin(id)
} else := sprintf("not used: not in %s", [order_labels[order_source]]) if {
	not in_scope(id)
} else := why_not(id) if {
	not user_pin
} else := sprintf("%s; the session is pinned to %s by the user", [why_not(id), user_pin]) if {
	not ready[id]
} else := sprintf("not used: the session is pinned to %s by the user", [user_pin])

why_not(id) := excluded[id]

why_not(id) := cooling_reason(profiles[id]) if not excluded[id]

cooling_reason(p) := concat("; ", [s | some s in [cooldown_text(p), disabled_text(p)]; s != ""])

cooldown_text(p) := sprintf("in cooldown for model %s until %s", [p.cooldownModel, fmt_time(t)]) if {
	t := cooldown_active(p)
	is_string(p.cooldownModel)
	p.cooldownModel != ""
} else := sprintf("in cooldown until %s", [fmt_time(t)]) if {
	t := cooldown_active(p)
} else := ""

disabled_text(p) := sprintf("disabled until %s (%s)", [fmt_time(t), p.disabledReason]) if {
	t := disabled_active(p)
	is_string(p.disabledReason)
	p.disabledReason != ""
} else := sprintf("disabled until %s", [fmt_time(t)]) if {
	t := disabled_active(p)
} else := ""

candidate_basis(id) := "pinned by the user for this session (strict: no failover)" if {
	is_user_pin(id)
} else := concat("; ", array.concat(array.concat(prefer_tag(id), auto_tag(id)), [order_tag(id)]))

prefer_tag(id) := ["preferred by data.opensoul.rules.prefer"] if preferred[id] else := []

auto_tag(id) := [sprintf("auto pin of session %s (last profile that succeeded)", [input.session.id])] if {
	id == auto_pin
} else := []

order_tag(id) := sprintf("position %d in %s", [order_index[id] + 1, order_labels[order_source]]) if {
	order_source
} else := sprintf("round robin: %s, %s", [object.get(profiles[id], "type", "unknown type"), last_used_text(profiles[id])])

last_used_text(p) := "never used" if last_used(p) == 0
else := sprintf("last used %s", [fmt_time(last_used(p))])

# fmt_time renders epoch ms as RFC 3339 (UTC). Times past what nanoseconds
# in an int64 can hold (year 2262) mean "until further notice".
fmt_time(ms) := time.format(ms * 1000000) if ms < 9000000000000
else := "further notice"
