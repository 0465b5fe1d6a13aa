package policy

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// The split evaluation (used while only the built-in policies are loaded).
//
// The built-in policy (policies/select.rego) decides in two layers: each
// profile's class (skipped, cooling or candidate, with its sort key and
// reason) from that profile's facts and a small request context, then the
// decision from the classes, the session's pins and the preferences. A
// class changes only when its profile's facts or context change, or when
// the clock crosses one of that profile's own time boundaries. So the
// engine keeps every profile's class with the interval of the clock it
// holds for, evaluates `classes` in one OPA evaluation over just the
// profiles whose class it does not have, and assembles the decision in Go
// the way `decision` does. TestSplitDecides holds the assembly equal to
// the whole evaluation on random inputs; TestClassKeyNoticesEveryField
// holds the class key (appendClassKey) to everything a class depends on.

// ClassesRule is the built-in policy's per-profile classification.
const ClassesRule = "data.opensoul.select.classes"

const textsRule = "data.opensoul.select.texts"

// classState is a class's state.
type classState uint8

const (
	skipped classState = iota + 1
	cooling
	candidate
)

// class is one profile's classification (see select.rego "Classes").
type class struct {
	state  classState
	until  ast.Value // cooling: when it can be used again
	key    ast.Value // candidate: its sort key (null outside the explicit order)
	reason string
	out    string // "" within the explicit order, else why it is not used
}

// classCache keeps profiles' classes by the exact encoding of what they
// depend on (appendClassKey: the profile's facts but not its id, and the
// context). Keyed by content rather than by id, two agents whose profiles
// share an id but not their facts (an agent's own limits, say) each keep
// theirs, and profiles of equal facts share one.
type classCache struct {
	mu  sync.Mutex
	m   map[string]*classEntry // string(class key) → class
	max int                    // bound on len(m); 0 means maxClasses
}

// classEntry never changes after it is stored.
type classEntry struct {
	lo, hi int64 // valid while lo <= now < hi
	c      class
}

// splitPrep is what a policy set needs for the split evaluation.
type splitPrep struct {
	query rego.PreparedEvalQuery // ClassesRule
	texts decisionTexts
}

// decisionTexts are the decision layer's phrases (select.rego `texts`):
// sprintf formats, read from the policy so that Rego and Go share them.
type decisionTexts struct {
	userPin, pinBut, pinMissing, pinnedElsewhereWhy, pinnedElsewhere, auto string
}

// prepareSplit readies the classes query and reads the texts of compiled
// built-in policies.
func prepareSplit(ctx context.Context, compiler *ast.Compiler, caps *ast.Capabilities) (*splitPrep, error) {
	q, err := rego.New(
		rego.Query(ClassesRule),
		rego.Compiler(compiler),
		rego.Capabilities(caps),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", ClassesRule, err)
	}
	rs, err := rego.New(rego.Query(textsRule), rego.Compiler(compiler), rego.Capabilities(caps)).Eval(ctx)
	if err != nil || len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("evaluate %s: undefined or %v", textsRule, err)
	}
	m, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want an object, got %T", textsRule, rs[0].Expressions[0].Value)
	}
	var t decisionTexts
	for name, dst := range map[string]*string{
		"user_pin": &t.userPin, "pin_but": &t.pinBut, "pin_missing": &t.pinMissing,
		"pinned_elsewhere_why": &t.pinnedElsewhereWhy, "pinned_elsewhere": &t.pinnedElsewhere, "auto": &t.auto,
	} {
		if *dst, ok = m[name].(string); !ok {
			return nil, fmt.Errorf("%s.%s: want a string, got %T", textsRule, name, m[name])
		}
	}
	return &splitPrep{query: q, texts: t}, nil
}

// classContext is what besides a profile's facts its class depends on
// (select.rego: input.now, input.request.model, input.request.client.name,
// input.order; the user rules' deny is empty while only built-in policies
// are loaded).
type classContext struct {
	now      int64
	source   byte           // 0: no explicit order, 1: the store's, 2: the config's
	position map[string]int // first position of each id in the explicit order
	model    string
	client   string
}

func newClassContext(in *Input) *classContext {
	c := &classContext{now: in.Now, model: in.Request.Model, client: in.Request.Client.Name}
	order := in.Order.Store
	switch {
	case len(in.Order.Store) > 0:
		c.source = 1
	case len(in.Order.Config) > 0:
		c.source, order = 2, in.Order.Config
	}
	if c.source != 0 {
		c.position = make(map[string]int, len(order))
		for i, id := range order {
			if _, dup := c.position[id]; !dup {
				c.position[id] = i
			}
		}
	}
	return c
}

// appendClassKey appends an exact encoding of what p's class depends on
// besides the clock: its facts as the built-in-only decision cache keys
// them (appendProfiles, so a fact added there is covered here), and the
// context that can matter to it. The request's model matters only to a
// profile whose cooldown is scoped to a model, and the request's client
// only to a profile scoped to a client: leaving them out otherwise keeps
// a profile's class when requests for other models and clients come in
// (TestClassKeyNoticesEveryField and TestSplitDecides check both).
//
// The id itself is left out (a class depends on it only through its
// position in the explicit order, which the key holds): profiles whose
// facts are equal share one class, classified once. TestClassKeyNoticesEveryField
// renames every profile and fails if a class changes.
func appendClassKey(b []byte, p *ProfileFacts, c *classContext) []byte {
	anon := *p
	anon.ID = ""
	b = appendProfiles(b, one(&anon), true)
	b = append(b, c.source)
	if c.source != 0 {
		pos, ok := c.position[p.ID]
		if !ok {
			pos = -1
		}
		b = binary.AppendVarint(b, int64(pos))
	}
	if m := p.CooldownModel; m != nil && *m != "" {
		b = appendString(append(b, 1), c.model)
	} else {
		b = append(b, 0)
	}
	if s := p.Scope; s != nil && *s != "" {
		b = appendString(append(b, 1), c.client)
	} else {
		b = append(b, 0)
	}
	return b
}

// one views one profile as a one-element slice (no copy; unsafe.Slice
// only builds the slice header).
func one(p *ProfileFacts) []ProfileFacts { return unsafe.Slice(p, 1) }

// profileValidity returns the clock interval [lo, hi) around now over which
// none of p's own time boundaries is crossed: its class holds over it.
func profileValidity(p *ProfileFacts, now int64) (lo, hi int64) {
	lo, hi = minTime, maxTime
	profileTimes(p, func(t int64) {
		if t <= now {
			lo = max(lo, t)
		} else {
			hi = min(hi, t)
		}
	})
	return lo, hi
}

// maxClasses bounds the class cache: about the profiles of every agent in
// use (like maxMemoTerms).
const maxClasses = 16384

// decideSplit makes the decision from the profiles' classes: cached ones
// while they hold, the rest classified in one evaluation.
func (s *policySet) decideSplit(ctx context.Context, in *Input, memo *termMemo, cc *classCache) (Decision, error) {
	n := len(in.Profiles)
	cx := newClassContext(in)
	buf := make([]byte, 0, 96*n)
	offs := make([]int, n+1)
	at := make(map[string]int, n) // id → index in in.Profiles
	for i := range in.Profiles {
		p := &in.Profiles[i]
		if _, dup := at[p.ID]; dup {
			return s.eval(ctx, in, memo) // the policy reports the conflict
		}
		at[p.ID] = i
		buf = appendClassKey(buf, p, cx)
		offs[i+1] = len(buf)
	}
	classes := make([]class, n)
	var miss []int    // the first profile of each key without a class
	var same [][2]int // [i, j]: profile i has profile j's key (j in miss)
	var first map[string]int
	cc.mu.Lock()
	for i := range in.Profiles {
		k := buf[offs[i]:offs[i+1]]
		e := cc.m[string(k)]
		if e != nil && e.lo <= in.Now && in.Now < e.hi {
			classes[i] = e.c
			continue
		}
		if first == nil {
			first = make(map[string]int)
		}
		if j, ok := first[string(k)]; ok {
			same = append(same, [2]int{i, j})
			continue
		}
		first[string(k)] = i
		miss = append(miss, i)
	}
	cc.mu.Unlock()
	if len(miss) > 0 {
		if err := s.classify(ctx, in, memo, miss, classes); err != nil {
			return Decision{}, err
		}
		for _, ij := range same {
			classes[ij[0]] = classes[ij[1]]
		}
		cc.mu.Lock()
		if cc.m == nil || len(cc.m)+len(miss) > cmp.Or(cc.max, maxClasses) {
			// Full (mostly classes of facts that have since changed):
			// start over with this decision's classes, so the profiles
			// in use do not all miss at once.
			old := cc.m
			cc.m = make(map[string]*classEntry, n)
			for i := range in.Profiles {
				k := buf[offs[i]:offs[i+1]]
				if e := old[string(k)]; e != nil {
					cc.m[string(k)] = e
				}
			}
		}
		for _, i := range miss {
			p := &in.Profiles[i]
			lo, hi := profileValidity(p, in.Now)
			cc.m[string(buf[offs[i]:offs[i+1]])] = &classEntry{lo: lo, hi: hi, c: classes[i]}
		}
		cc.mu.Unlock()
	}
	return assemble(in, at, classes, &s.split.texts), nil
}

// classify evaluates ClassesRule over the profiles at idx (the rest of the
// input as it is) and stores their classes in out.
func (s *policySet) classify(ctx context.Context, in *Input, memo *termMemo, idx []int, out []class) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = decisionErr("classification panicked: %v", r)
		}
	}()
	sub := make([]ProfileFacts, len(idx))
	for j, i := range idx {
		sub[j] = in.Profiles[i]
	}
	rs, err := s.split.query.Eval(ctx, rego.EvalParsedInput(classInput(in, memo.profiles(sub))))
	if err != nil {
		return &DecisionError{Rule: ClassesRule, Err: err}
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return &DecisionError{Rule: ClassesRule, Err: ErrUndefined}
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return &DecisionError{Rule: ClassesRule, Err: fmt.Errorf("unexpected result type %T", rs[0].Expressions[0].Value)}
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return &DecisionError{Rule: ClassesRule, Err: fmt.Errorf("want an object, got %s", ast.ValueName(t.Value))}
	}
	for _, i := range idx {
		id := in.Profiles[i].ID
		v := obj.Get(ast.StringTerm(id))
		if v == nil {
			return &DecisionError{Rule: ClassesRule, Err: fmt.Errorf("no class for profile %q", id)}
		}
		if out[i], err = parseClass(v.Value); err != nil {
			return &DecisionError{Rule: ClassesRule, Err: fmt.Errorf("profile %q: %w", id, err)}
		}
	}
	return nil
}

// classInput is the input of the classes query: the given profiles and
// only the context a class may depend on (select.rego "Classes"). A rule
// of `classes` that read another field would find it undefined here and
// classify differently from the whole evaluation, which TestSplitDecides
// would catch. A smaller input is cheaper to build.
func classInput(in *Input, profiles *ast.Term) ast.Value {
	return ast.NewObject(
		item("now", intTerm(in.Now)),
		item("request", ast.ObjectTerm(
			item("model", ast.StringTerm(in.Request.Model)),
			item("client", ast.ObjectTerm(item("name", ast.StringTerm(in.Request.Client.Name)))),
		)),
		item("order", ast.ObjectTerm(
			item("store", stringsTerm(in.Order.Store)),
			item("config", stringsTerm(in.Order.Config)),
		)),
		item("profiles", profiles),
	)
}

func parseClass(v ast.Value) (class, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return class{}, fmt.Errorf("want an object, got %s", ast.ValueName(v))
	}
	var c class
	str := func(name string) (string, error) {
		s, ok := field(obj, name).(ast.String)
		if !ok {
			return "", fmt.Errorf("%s: want a string", name)
		}
		return string(s), nil
	}
	state, err := str("state")
	if err != nil {
		return class{}, err
	}
	if c.reason, err = str("reason"); err != nil {
		return class{}, err
	}
	if c.out, err = str("out"); err != nil {
		return class{}, err
	}
	switch state {
	case "skipped":
		c.state = skipped
	case "cooling":
		c.state = cooling
		if c.until = field(obj, "until"); c.until == nil {
			return class{}, fmt.Errorf("cooling without until")
		}
	case "candidate":
		c.state = candidate
		if c.key = field(obj, "key"); c.key == nil {
			return class{}, fmt.Errorf("candidate without key")
		}
	default:
		return class{}, fmt.Errorf("state %q: want skipped, cooling or candidate", state)
	}
	return c, nil
}

// assemble makes the decision from the classes of in.Profiles (classes[i]
// is in.Profiles[i]'s; at maps each id to its index) exactly as
// select.rego's decision layer does with no user rules (no deny, no
// prefer).
func assemble(in *Input, at map[string]int, classes []class, tx *decisionTexts) Decision {
	n := len(in.Profiles)
	var userPin, autoPin string
	var hasUser, hasAuto bool
	if p := in.Session.Pin; p != nil {
		switch {
		case p.Source == "user" && forProvider(p.Profile, at, in.Request.Provider):
			userPin, hasUser = p.Profile, true
		case p.Source == "auto" && !in.Session.New:
			autoPin, hasAuto = p.Profile, true
		}
	}
	ordered := len(in.Order.Store) > 0 || len(in.Order.Config) > 0

	// base: the in-scope candidates by [key, id].
	var base []int
	for i := range classes {
		if classes[i].state == candidate && classes[i].out == "" {
			base = append(base, i)
		}
	}
	slices.SortFunc(base, func(a, b int) int {
		if c := ast.Compare(classes[a].key, classes[b].key); c != 0 {
			return c
		}
		return strings.Compare(in.Profiles[a].ID, in.Profiles[b].ID)
	})
	autoFirst := -1
	if i, ok := at[autoPin]; ok && hasAuto && classes[i].state == candidate && classes[i].out == "" {
		autoFirst = i
	}

	d := Decision{Strict: hasUser, Reasons: make(map[string]string, n+1)}
	pinAt, pinKnown := at[userPin]
	pinKnown = pinKnown && hasUser
	switch {
	case hasUser:
		d.Candidates = []string{}
		if pinKnown && classes[pinAt].state == candidate {
			d.Candidates = append(d.Candidates, userPin)
			d.Reasons[userPin] = tx.userPin
		}
	default:
		d.Candidates = make([]string, 0, len(base))
		if autoFirst >= 0 {
			d.Candidates = append(d.Candidates, autoPin)
			d.Reasons[autoPin] = joinNonEmpty(fmt.Sprintf(tx.auto, in.Session.ID), classes[autoFirst].reason)
		}
		for _, i := range base {
			if i != autoFirst {
				d.Candidates = append(d.Candidates, in.Profiles[i].ID)
				d.Reasons[in.Profiles[i].ID] = classes[i].reason
			}
		}
	}

	// rotate: in round robin without pins, the leading candidates sharing
	// the first one's key.
	switch {
	case !hasUser && !ordered && autoFirst < 0 && len(base) > 0:
		top := classes[base[0]].key
		for _, i := range base {
			if ast.Compare(classes[i].key, top) == 0 {
				d.Rotate++
			}
		}
	case len(d.Candidates) > 0:
		d.Rotate = 1
	}

	// cooling: by [until, id], leaving out those outside the explicit
	// order unless pinned by the user.
	var cool []int
	for i := range classes {
		if classes[i].state == cooling && (classes[i].out == "" || hasUser && in.Profiles[i].ID == userPin) {
			cool = append(cool, i)
		}
	}
	slices.SortFunc(cool, func(a, b int) int {
		if c := ast.Compare(classes[a].until, classes[b].until); c != 0 {
			return c
		}
		return strings.Compare(in.Profiles[a].ID, in.Profiles[b].ID)
	})
	d.Cooling = make([]string, len(cool))
	for j, i := range cool {
		d.Cooling[j] = in.Profiles[i].ID
	}

	// The other reasons.
	if hasUser && !pinKnown {
		d.Reasons[userPin] = fmt.Sprintf(tx.pinMissing, userPin, in.Request.Provider)
	}
	for i := range classes {
		c := &classes[i]
		id := in.Profiles[i].ID
		switch {
		case hasUser && id == userPin:
			if c.state != candidate {
				d.Reasons[id] = fmt.Sprintf(tx.pinBut, c.reason)
			}
		case c.out != "":
			d.Reasons[id] = c.out
		case hasUser && c.state != candidate:
			d.Reasons[id] = fmt.Sprintf(tx.pinnedElsewhereWhy, c.reason, userPin)
		case hasUser:
			d.Reasons[id] = fmt.Sprintf(tx.pinnedElsewhere, userPin)
		case c.state != candidate:
			d.Reasons[id] = c.reason
		}
	}
	return d
}

// joinNonEmpty joins the non-empty strings with "; " (select.rego's
// concat of the tags that are not "").
func joinNonEmpty(ss ...string) string {
	return strings.Join(slices.DeleteFunc(ss, func(s string) bool { return s == "" }), "; ")
}

// forProvider: select.rego's for_provider (an input profile, or an id of
// the request's provider).
func forProvider(id string, at map[string]int, provider string) bool {
	if _, ok := at[id]; ok {
		return true
	}
	return strings.HasPrefix(id, provider+":")
}
