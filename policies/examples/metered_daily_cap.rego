# No more than $20 a day on a metered key: an `api_key` profile whose spend
# over the last 24 hours reached the cap stops serving, and requests go to
# the other profiles (or fail with this reason when none is left).
# input.profiles[].usage["24h"].cost is in US dollars at the prices of
# usage.prices (the shipped list prices otherwise), counted from the usage
# store of every gateway sharing the state dir, with two significant digits
# (never finer than a cent), so $20 is crossed exactly when the spend is.
# The key serves again once answers older than 24 hours leave the window.
package opensoul.rules

metered_daily_cap_usd := 20

deny contains {"profile": p.id, "reason": sprintf("metered key spent $%v in the last 24 hours; the cap is $%v a day", [p.usage["24h"].cost, metered_daily_cap_usd])} if {
	some p in input.profiles
	p.type == "api_key"
	p.usage["24h"].cost >= metered_daily_cap_usd
}
