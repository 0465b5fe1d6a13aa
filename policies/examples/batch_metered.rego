# Batch agents pay as they go: an agent whose config marks it
# `purpose: batch` (agents.<id>.attrs, seen here as input.agent.attrs) is
# served by metered credentials only — `api_key` profiles — never by a
# subscription token or an OAuth login that people need for their own work.
#
#   agents:
#     cron:
#       attrs: {purpose: batch}
#
# (When no profile can serve, the gateway falls back to the environment or
# config key outside the policy; keep a subscription token out of
# ANTHROPIC_OAUTH_TOKEN if batch agents must never reach it.)
package opensoul.rules

deny contains {"profile": p.id, "reason": sprintf("agent %s has purpose batch: metered api_key profiles only", [input.agent.id])} if {
	input.agent.attrs.purpose == "batch"
	some p in input.profiles
	p.type != "api_key"
}
