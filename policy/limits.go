package policy

import (
	"fmt"
	"math/big"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// MaxRange is the most numbers one numbers.range or numbers.range_step
// call may make. One call builds its whole array before the CPU bound can
// stop it (numbers.range(1, 2000000) costs over 100 MB), so the memory
// bound on one evaluation starts here; the rest is bounded by the CPU
// budget, which limits how much any loop can build. A call over the limit
// stops the evaluation, which then fails closed.
const MaxRange = 100_000

func init() {
	limitRange(ast.NumbersRange.Name, 2)
	limitRange(ast.NumbersRangeStep.Name, 3)
}

// limitRange wraps the range built-in name (with nargs operands: from, to
// and, for range_step, step) in the MaxRange check. The wrapper replaces
// OPA's implementation for the whole process, policy tests included.
func limitRange(name string, nargs int) {
	orig := topdown.GetBuiltin(name)
	topdown.RegisterBuiltinFunc(name, func(bctx topdown.BuiltinContext, ops []*ast.Term, iter func(*ast.Term) error) error {
		if len(ops) >= nargs { // (the call's output may follow its operands)
			if n, ok := rangeLen(ops[:nargs]); ok && n.Cmp(big.NewInt(MaxRange)) > 0 {
				return topdown.Halt{Err: fmt.Errorf("%s: %s numbers are more than the %d one call may make (opensoul's memory bound on one evaluation)", name, n, MaxRange)}
			}
		}
		return orig(bctx, ops, iter)
	})
}

// rangeLen is how many numbers a range call would make; ok is false when
// the operands are not integers (OPA then reports the error).
func rangeLen(ops []*ast.Term) (*big.Int, bool) {
	x, err := builtins.BigIntOperand(ops[0].Value, 1)
	if err != nil {
		return nil, false
	}
	y, err := builtins.BigIntOperand(ops[1].Value, 2)
	if err != nil {
		return nil, false
	}
	step := big.NewInt(1)
	if len(ops) == 3 {
		if step, err = builtins.BigIntOperand(ops[2].Value, 3); err != nil || step.Sign() <= 0 {
			return nil, false
		}
	}
	n := new(big.Int).Sub(y, x)
	n.Abs(n).Quo(n, step)
	return n.Add(n, big.NewInt(1)), true
}
