# Keep subscription tokens for people: a `token` profile (a Claude
# setup-token) serves only interactive clients — Claude Code, Codex and
# OpenClaw, as the gateway identifies them in input.request.client — and
# scripts, SDKs and curl go to the other profiles.
package opensoul.rules

interactive_clients := {"claude-code", "codex", "openclaw"}

deny contains {"profile": p.id, "reason": sprintf("subscription tokens serve interactive clients only, not %s", [input.request.client.name])} if {
	not input.request.client.name in interactive_clients
	some p in input.profiles
	p.type == "token"
}
