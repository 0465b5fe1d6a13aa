# A daily token budget per agent: once an agent's requests used its budget
# over the last 24 hours, every profile is denied for it, with the reason,
# until answers older than 24 hours leave the window. The budget is the
# agent's `dailyTokens` attribute in the config (agents.<id>.attrs, e.g.
# `agents: {cron: {attrs: {dailyTokens: "2000000"}}}`), else
# agent_default_daily_tokens below. input.agent.usage["24h"].tokens counts
# every token (input, output and cache) of every profile the agent used,
# from every gateway sharing the state dir, with two significant digits, so
# a budget like 2000000 or 1500000 is met exactly when the count is.
#
# The environment and config keys (DESIGN §3) are the gateway's last resort
# when no profile may serve, outside the policy: for a hard budget, keep
# the agent's credentials in profiles only.
package opensoul.rules

agent_default_daily_tokens := 5000000

agent_daily_tokens := n if {
	n := to_number(input.agent.attrs.dailyTokens)
} else := agent_default_daily_tokens

deny contains {"profile": p.id, "reason": sprintf("agent %s used %v tokens in the last 24 hours; its daily budget is %v tokens", [input.agent.id, input.agent.usage["24h"].tokens, agent_daily_tokens])} if {
	input.agent.usage["24h"].tokens >= agent_daily_tokens
	some p in input.profiles
}
