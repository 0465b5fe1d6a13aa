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
// clock themselves turn the cache off. [Engine.Reload] re-reads the
// directories so a running gateway picks up edits; a set that does not
// compile is refused and the previous one kept.
//
// [Test] and [Check] run Rego unit tests and compile checks for the CLI;
// [WriteExplain] renders a decision for people.
package policy
