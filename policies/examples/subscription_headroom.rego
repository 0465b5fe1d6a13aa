# Spend a subscription on interactive clients only until 90% of its
# window is used: past that (input.profiles[].limits.headroom below 0.1,
# from the provider's rate-limit headers) a `token` profile is kept back
# for when the window refills, and requests go to the metered keys. The
# built-in policy already prefers the profile with the most headroom; this
# rule stops a nearly spent subscription from serving at all.
package opensoul.rules

deny contains {"profile": p.id, "reason": sprintf("the subscription has %v%% of its window left; kept for when it refills", [round(100 * p.limits.headroom)])} if {
	some p in input.profiles
	p.type == "token"
	p.limits.headroom < 0.1
}
