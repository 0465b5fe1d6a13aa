# The cron agent never uses metered API keys
#
# Scheduled jobs run as agent `cron` and can burn through a pay-per-use
# budget unnoticed. This removes every api_key profile from their choice,
# so they run on subscription tokens or OAuth logins only, and fail (with
# this reason in the error) rather than spend money when none is usable.
# Copy into <state>/policies/ to enable.
package opensoul.rules

deny contains {"profile": p.id, "reason": "agent cron never uses metered api_key profiles"} if {
	input.agent.id == "cron"
	some p in input.profiles
	p.type == "api_key"
}
