package policy

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DecisionRule is the rule the gateway evaluates.
const DecisionRule = "data.opensoul.select.decision"

// ErrUndefined means the policies define no decision for an input.
var ErrUndefined = errors.New("decision is undefined")

// DecisionError says why no usable decision came out of the policies for
// one input. The caller fails closed for that request only.
type DecisionError struct {
	Rule string // always DecisionRule
	Err  error
}

func (e *DecisionError) Error() string { return "policy: " + e.Rule + ": " + e.Err.Error() }

func (e *DecisionError) Unwrap() error { return e.Err }

func decisionErr(format string, args ...any) error {
	return &DecisionError{Rule: DecisionRule, Err: fmt.Errorf(format, args...)}
}

// parseDecision checks that v has the shape of a Decision and names only
// the input's profiles: candidates and cooling are disjoint lists of known,
// distinct ids; strict is a boolean; reasons maps every profile (and may
// map the session's pinned id) to a string; rotate, when given, counts
// some of the candidates.
func parseDecision(v ast.Value, in *Input) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, decisionErr("want an object, got %s", ast.ValueName(v))
	}
	known := make(map[string]bool, len(in.Profiles))
	for i := range in.Profiles {
		known[in.Profiles[i].ID] = true
	}
	var d Decision
	seen := make(map[string]string, len(in.Profiles))
	var err error
	if d.Candidates, err = idList(obj, "candidates", known, seen); err != nil {
		return Decision{}, err
	}
	if d.Cooling, err = idList(obj, "cooling", known, seen); err != nil {
		return Decision{}, err
	}
	switch s := field(obj, "strict").(type) {
	case ast.Boolean:
		d.Strict = bool(s)
	case nil:
		return Decision{}, decisionErr("strict is missing")
	default:
		return Decision{}, decisionErr("strict: want a boolean, got %s", ast.ValueName(s))
	}
	if d.Reasons, err = reasons(obj, in, known); err != nil {
		return Decision{}, err
	}
	if d.Rotate, err = rotate(obj, len(d.Candidates)); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// rotate reads the optional count of leading candidates of equal rank:
// an integer from 1 to the number of candidates (0 when there are none).
func rotate(obj ast.Object, candidates int) (int, error) {
	v := field(obj, "rotate")
	if v == nil {
		return min(candidates, 1), nil
	}
	n, ok := v.(ast.Number)
	if !ok {
		return 0, decisionErr("rotate: want a number of candidates, got %s", ast.ValueName(v))
	}
	i, ok := n.Int()
	if !ok {
		return 0, decisionErr("rotate: want a whole number of candidates, got %s", n)
	}
	if lo := min(candidates, 1); i < lo || i > candidates {
		return 0, decisionErr("rotate: %d is not between %d and the %d candidates", i, lo, candidates)
	}
	return i, nil
}

func field(obj ast.Object, name string) ast.Value {
	t := obj.Get(ast.StringTerm(name))
	if t == nil {
		return nil
	}
	return t.Value
}

// idList reads an array of profile ids. seen records which list an id was
// already in, so an id can't appear twice or in both lists.
func idList(obj ast.Object, name string, known map[string]bool, seen map[string]string) ([]string, error) {
	arr, ok := field(obj, name).(*ast.Array)
	if !ok {
		if v := field(obj, name); v != nil {
			return nil, decisionErr("%s: want an array of profile ids, got %s", name, ast.ValueName(v))
		}
		return nil, decisionErr("%s is missing", name)
	}
	out := make([]string, 0, arr.Len())
	for i := range arr.Len() {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, decisionErr("%s[%d]: want a profile id, got %s", name, i, ast.ValueName(arr.Elem(i).Value))
		}
		id := string(s)
		if !known[id] {
			return nil, decisionErr("%s[%d]: unknown profile %q (not in input.profiles)", name, i, id)
		}
		if prev, dup := seen[id]; dup {
			return nil, decisionErr("%s[%d]: profile %q is already listed in %s", name, i, id, prev)
		}
		seen[id] = name
		out = append(out, id)
	}
	return out, nil
}

func reasons(obj ast.Object, in *Input, known map[string]bool) (map[string]string, error) {
	ro, ok := field(obj, "reasons").(ast.Object)
	if !ok {
		if v := field(obj, "reasons"); v != nil {
			return nil, decisionErr("reasons: want an object of profile id to reason, got %s", ast.ValueName(v))
		}
		return nil, decisionErr("reasons is missing")
	}
	out := make(map[string]string, ro.Len())
	err := ro.Iter(func(k, v *ast.Term) error {
		id, ok := k.Value.(ast.String)
		if !ok {
			return decisionErr("reasons: want string keys, got %s", ast.ValueName(k.Value))
		}
		r, ok := v.Value.(ast.String)
		if !ok {
			return decisionErr("reasons[%q]: want a string, got %s", string(id), ast.ValueName(v.Value))
		}
		pinned := in.Session.Pin != nil && in.Session.Pin.Profile == string(id)
		if !known[string(id)] && !pinned {
			return decisionErr("reasons: unknown profile %q (not in input.profiles)", string(id))
		}
		out[string(id)] = string(r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range in.Profiles {
		if _, ok := out[in.Profiles[i].ID]; !ok {
			return nil, decisionErr("reasons: no reason for profile %q", in.Profiles[i].ID)
		}
	}
	return out, nil
}
