// Package policy decides which credential profiles serve a request by
// evaluating Rego (OPA v1) over the facts in an [Input] (DESIGN §5).
//
// An [Engine] compiles the built-in policies embedded from policies/ plus
// the user's policy directories once, with the built-ins that reach outside
// the process (http.send, net.*, opa.runtime) removed, and prepares the
// query data.opensoul.select.decision for concurrent evaluation. Decisions
// are cached: the key is every input fact except the clock, and an entry is
// served only while the clock stays between the time boundaries the input
// carries (cooldowns, disables, expiries), so a cached decision is never
// served after something it depended on changed. User policies that read the
// clock themselves turn the cache off.
//
// Below the decision cache, while only the built-in policies are loaded,
// the engine splits the evaluation (split.go): each profile's class
// ([ClassesRule]: skipped, cooling or candidate, with its sort key and
// reason) depends only on that profile's facts and a small request context
// (the clock, the request's model and client, the explicit order), so it
// is kept per profile with the clock interval of the profile's own time
// boundaries, only changed profiles are classified (one evaluation for all
// of them, once for each set of equal facts: a class does not depend on
// the profile's id), and the decision is assembled in Go as the policy's decision
// rule does. With a user policy loaded every decision is the whole
// evaluation. [Engine.Reload] re-reads the
// directories so a running gateway picks up edits; a set that does not
// compile is refused and the previous one kept.
//
// [Test] and [Check] run Rego unit tests and compile checks for the CLI;
// [WriteExplain] renders a decision for people.
package policy
