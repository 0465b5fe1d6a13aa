# Route a model family to a named profile
#
# Requests for any claude-opus-* model go to the profile
# anthropic:opus first (say, the account with the larger Opus quota).
# The other profiles remain fallbacks when it is cooling or fails. For
# strict routing, deny the others instead: uncomment the deny rule.
# Copy into <state>/policies/ to enable.
package opensoul.rules

opus_profile := "anthropic:opus"

opus_request if glob.match("claude-opus-*", [], input.request.model)

prefer contains opus_profile if opus_request

# deny contains {"profile": p.id, "reason": "claude-opus-* requests go to anthropic:opus only"} if {
# 	opus_request
# 	some p in input.profiles
# 	p.id != opus_profile
# }
