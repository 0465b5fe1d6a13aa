# Subscription tokens first during working hours
#
# A Claude subscription (a setup token, profile type `token`) is paid for
# whether it is used or not, so during working hours, Monday to Friday
# 09:00–18:00 UTC, token profiles are tried before OAuth logins and API
# keys. Outside those hours the built-in order applies. Change the days,
# hours or time zone (time.clock([ns, "Europe/Berlin"]) needs tz data on
# the host) to match your week.
#
# This policy reads input.now, so while it is loaded decisions are not
# cached (each one is evaluated; still well under a millisecond).
# Copy into <state>/policies/ to enable.
package opensoul.rules

working_days := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

working_hours if {
	ns := input.now * 1000000
	time.weekday(ns) in working_days
	[hour, _, _] := time.clock(ns)
	hour >= 9
	hour < 18
}

prefer contains p.id if {
	working_hours
	some p in input.profiles
	p.type == "token"
}
