# A lower bound, not a policy: round robin, cooldowns and the auto pin for
# the benchmark's input and nothing else (no unusable credentials, expiry,
# disables, model scopes, explicit orders, user pins, rules.deny or
# rules.prefer, and no checks that the input has the expected shape). For
# that input it reaches the built-in policy's candidates and cooling (the
# benchmark checks this), so it shows what the built-in policy's common
# case would cost if every other rule were free. See BenchmarkDecideBounds.
package opensoul.select

decision := {"candidates": candidates, "cooling": cooling, "strict": false, "reasons": reasons}

plain := keys if {
	st := {"ok": true, "static": true, "expiring": true}
	r := {"oauth": 0, "token": 1, "api_key": 2}
	keys := {p.id: [r[p.type], p.id] |
		some p in input.profiles
		st[p.status]
		p.cooldownUntil = 0
		p.disabledUntil = 0
	}
}

cooling_until := until if {
	plain_ := plain
	now := input.now
	until := {p.id: [t, sprintf("in cooldown until %s", [time.format(t * 1000000)])] |
		some p in input.profiles
		not plain_[p.id]
		t := p.cooldownUntil
		t > now
	}
}

# Profiles whose cooldown is over (but not cleared) are ready too.
ready := object.union(plain, late) if {
	plain_ := plain
	now := input.now
	r := {"oauth": 0, "token": 1, "api_key": 2}
	late := {p.id: [r[p.type], p.id] |
		some p in input.profiles
		not plain_[p.id]
		p.cooldownUntil <= now
	}
}

auto_first := {pin: [-1, pin] | pin := input.session.pin.profile; ready[pin]}

candidates := [k[1] | some k in sort([k | some k in object.union(ready, auto_first)])]

cooling := [x[1] | some x in sort([[c[0], id] | some id, c in cooling_until])]

reasons := object.union_n([
	texts,
	{id: c[1] | some id, c in cooling_until},
	{pin: concat("; ", ["auto pin", texts[pin]]) | some pin, _ in auto_first},
]) if {
	rr := ["round robin, oauth", "round robin, token", "round robin, api_key"]
	texts := {id: rr[k[0]] | some id, k in ready}
}
