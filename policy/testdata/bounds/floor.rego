# A lower bound, not a policy: the least a decision can cost. It names every
# profile once and decides nothing. See BenchmarkDecideBounds.
package opensoul.select

decision := {
	"candidates": [],
	"cooling": [],
	"strict": false,
	"reasons": {p.id: "floor" | some p in input.profiles},
}
