package policy

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The decision cache is only correct if every fact of Input reaches the
// cache key (appendKey) and every time-valued fact reaches the validity
// window (validity). TestCacheNoticesEveryField walks Input by reflection,
// so a field added later is covered without anyone remembering this test:
// forgetting it in appendKey makes the test fail.

// clockFields are compared with Now by the built-in policy, so they must
// bound the validity window (see validity). Every other integer is a count
// or an ordering and must not: notTimeFields names those, so a new integer
// field fails TestCacheValidityFields until someone decides which it is.
var notTimeFields = map[string]string{
	"Profiles[0].LastUsed":   "not read by the built-in policy; keyed by value for user policies",
	"Profiles[0].ErrorCount": "a count",
	"Session.Requests":       "a count (quantized by the gateway: SessionRequestsBucket; not read by the built-in policy)",
	"Session.Started":        "a past time: keyed by value; a policy comparing it with input.now reads the clock and is not cached (volatileRef)",
}

// Usage totals are counts (requests, tokens) over windows that end now:
// every integer in UsageTotals, for the agent and the profiles.
func init() {
	for _, owner := range []string{"Agent.Usage", "Profiles[0].Usage"} {
		for w := range reflect.TypeFor[UsageFacts]().Fields() {
			for f := range reflect.TypeFor[UsageTotals]().Fields() {
				if f.Type.Kind() == reflect.Int64 {
					notTimeFields[owner+"."+w.Name+"."+f.Name] = "a usage total: a count over a window ending now"
				}
			}
		}
	}
}

// leaf is one settable value inside an Input, named by its path.
type leaf struct {
	path string
	get  func(*Input) reflect.Value
}

// leaves lists every scalar, pointer and slice in an Input shaped like
// the filled one: the value itself for scalars, and for pointers and
// slices the container (the walk also descends into it).
func leaves(t *testing.T) []leaf {
	var out []leaf
	var walk func(path string, typ reflect.Type, get func(*Input) reflect.Value)
	walk = func(path string, typ reflect.Type, get func(*Input) reflect.Value) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				if !f.IsExported() {
					continue // not a fact: the policy sees the JSON, which has exported fields only (list is Profiles prepared)
				}
				walk(join(path, f.Name), f.Type, func(in *Input) reflect.Value { return get(in).Field(i) })
			}
		case reflect.Pointer:
			out = append(out, leaf{path, get})
			walk(path, typ.Elem(), func(in *Input) reflect.Value { return get(in).Elem() })
		case reflect.Slice:
			out = append(out, leaf{path, get})
			walk(path+"[0]", typ.Elem(), func(in *Input) reflect.Value { return get(in).Index(0) })
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Float64:
			out = append(out, leaf{path, get})
		case reflect.Map:
			if typ.Key().Kind() != reflect.String || typ.Elem().Kind() != reflect.String {
				t.Fatalf("%s: the policy input has a %s; teach this test to change one (and appendKey to encode it)", path, typ)
			}
			out = append(out, leaf{path, get}) // changed as a whole: see changes
		default:
			t.Fatalf("%s: the policy input has a %s; teach this test to change one (and appendKey to encode it)", path, typ.Kind())
		}
	}
	walk("", reflect.TypeFor[Input](), func(in *Input) reflect.Value { return reflect.ValueOf(in).Elem() })
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// filledInput returns an Input with every field set: two elements in
// every slice, every pointer non-nil, distinct small values counting up
// (so profile 0's lastUsed ranks below profile 1's), and Now far after
// all of them.
func filledInput() *Input {
	n := 0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		n++
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					fill(v.Field(i))
				}
			}
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem())
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 2, 2))
			fill(v.Index(0))
			fill(v.Index(1))
		case reflect.Map:
			v.Set(reflect.MakeMap(v.Type()))
			for range 2 {
				n++
				v.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d", n)), reflect.ValueOf(fmt.Sprintf("v%d", n)))
			}
		case reflect.String:
			v.SetString(fmt.Sprintf("v%d", n))
		case reflect.Bool:
			v.SetBool(n%2 == 0)
		case reflect.Int, reflect.Int64, reflect.Int32:
			v.SetInt(int64(n))
		case reflect.Uint, reflect.Uint64:
			v.SetUint(uint64(n))
		case reflect.Float64:
			v.SetFloat(float64(n))
		}
	}
	in := &Input{}
	fill(reflect.ValueOf(in).Elem())
	in.Now = 1 << 40
	return in
}

// clone deep-copies an Input's facts (not a prepared ProfileList).
func clone(in *Input) *Input {
	var cp func(dst, src reflect.Value)
	cp = func(dst, src reflect.Value) {
		switch src.Kind() {
		case reflect.Struct:
			for i := range src.NumField() {
				if src.Type().Field(i).IsExported() {
					cp(dst.Field(i), src.Field(i))
				}
			}
		case reflect.Pointer:
			if !src.IsNil() {
				dst.Set(reflect.New(src.Type().Elem()))
				cp(dst.Elem(), src.Elem())
			}
		case reflect.Slice:
			if !src.IsNil() {
				dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
				for i := range src.Len() {
					cp(dst.Index(i), src.Index(i))
				}
			}
		case reflect.Map:
			if !src.IsNil() {
				dst.Set(reflect.MakeMap(src.Type()))
				for it := src.MapRange(); it.Next(); {
					dst.SetMapIndex(it.Key(), it.Value())
				}
			}
		default:
			dst.Set(src)
		}
	}
	out := &Input{}
	cp(reflect.ValueOf(out).Elem(), reflect.ValueOf(in).Elem())
	return out
}

// changes lists the ways to change the value at l, each named.
func changes(l leaf, base *Input) map[string]func(*Input) {
	v := l.get(base)
	out := map[string]func(*Input){}
	switch v.Kind() {
	case reflect.String:
		out["edit"] = func(in *Input) { s := l.get(in); s.SetString(s.String() + "x") }
		out["clear"] = func(in *Input) { l.get(in).SetString("") }
	case reflect.Bool:
		out["flip"] = func(in *Input) { b := l.get(in); b.SetBool(!b.Bool()) }
	case reflect.Int, reflect.Int64, reflect.Int32:
		out["raise"] = func(in *Input) { i := l.get(in); i.SetInt(i.Int() + 1_000_003) }
		out["zero"] = func(in *Input) { l.get(in).SetInt(0) }
	case reflect.Uint, reflect.Uint64:
		out["raise"] = func(in *Input) { i := l.get(in); i.SetUint(i.Uint() + 1_000_003) }
	case reflect.Float64:
		out["raise"] = func(in *Input) { f := l.get(in); f.SetFloat(f.Float() + 0.5) }
	case reflect.Pointer:
		out["nil"] = func(in *Input) { p := l.get(in); p.Set(reflect.Zero(p.Type())) }
	case reflect.Slice:
		out["drop last"] = func(in *Input) { s := l.get(in); s.Set(s.Slice(0, s.Len()-1)) }
		out["empty"] = func(in *Input) { s := l.get(in); s.Set(reflect.MakeSlice(s.Type(), 0, 0)) }
		out["swap"] = func(in *Input) { s := l.get(in); reflect.Swapper(s.Interface())(0, 1) }
	case reflect.Map: // map[string]string (leaves refuses others)
		first := func(m reflect.Value) reflect.Value {
			keys := m.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
			return keys[0]
		}
		out["edit value"] = func(in *Input) {
			m := l.get(in)
			k := first(m)
			m.SetMapIndex(k, reflect.ValueOf(m.MapIndex(k).String()+"x"))
		}
		out["rename key"] = func(in *Input) {
			m := l.get(in)
			k := first(m)
			v := m.MapIndex(k)
			m.SetMapIndex(k, reflect.Value{})
			m.SetMapIndex(reflect.ValueOf(k.String()+"x"), v)
		}
		out["add"] = func(in *Input) { l.get(in).SetMapIndex(reflect.ValueOf("added"), reflect.ValueOf("")) }
		out["delete"] = func(in *Input) { m := l.get(in); m.SetMapIndex(first(m), reflect.Value{}) }
		out["empty"] = func(in *Input) { m := l.get(in); m.Set(reflect.MakeMap(m.Type())) }
		// Moving a value between keys keeps the multisets of keys and of
		// values: an encoding that lost the pairing would miss it.
		out["swap values"] = func(in *Input) {
			m := l.get(in)
			keys := m.MapKeys()
			a, b := m.MapIndex(keys[0]), m.MapIndex(keys[1])
			m.SetMapIndex(keys[0], b)
			m.SetMapIndex(keys[1], a)
		}
	}
	return out
}

// prepared returns a copy of in whose profiles are a ProfileList, the way
// the gateway hands them over: the cache then keys and bounds them as a
// whole (ProfileList), a second path every fact must reach.
func prepared(in *Input) *Input {
	out := clone(in)
	out.SetProfiles(NewProfileList(out.Profiles))
	return out
}

// withoutUnread returns a copy of in with the facts the built-in policy
// does not read (builtinUnread) zero: what appendKey keys for it.
func withoutUnread(in *Input) *Input {
	out := clone(in)
	for i := range out.Profiles {
		out.Profiles[i].LastUsed = 0
		out.Profiles[i].Usage = nil
	}
	out.Session.Started, out.Session.Requests = 0, 0
	if !sessionRead(out) {
		out.Session.ID, out.Session.New = "", false
	}
	out.Agent.Usage = nil
	return out
}

// TestBuiltinReadsNoUnkeyedFact: the built-in-only cache key leaves out
// builtinUnread, which is right only while no built-in policy file names
// those fields (as a ref like p.lastUsed or a string like "lastUsed").
func TestBuiltinReadsNoUnkeyedFact(t *testing.T) {
	t.Parallel()
	for name, m := range builtinModules(t) {
		ast.WalkTerms(m, func(x *ast.Term) bool {
			if s, ok := x.Value.(ast.String); ok && slices.Contains(builtinUnread, string(s)) {
				t.Errorf("%s:%d reads %q, which the built-in-only cache key leaves out (builtinUnread in policy/cache.go)", name, x.Location.Row, string(s))
			}
			return false
		})
	}
}

// builtinModules parses the built-in policy files (not their tests), by
// name; it fails the test when there are none.
func builtinModules(t *testing.T) map[string]*ast.Module {
	t.Helper()
	srcs, err := builtinSources()
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]*ast.Module{}
	for _, src := range srcs {
		if src.isTest() {
			continue
		}
		m, err := ast.ParseModuleWithOpts(src.name, string(src.text), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[src.name] = m
	}
	if len(mods) == 0 {
		t.Fatal("no built-in policy checked")
	}
	return mods
}

// TestCacheNoticesEveryField changes every field of the policy input in
// turn (every string, bool, number, pointer and slice, found by
// reflection) and checks that a decision cached for the input before the
// change is not served after it, with lastUsed keyed by value (a user
// policy loaded) and left out (built-in policy only).
func TestCacheNoticesEveryField(t *testing.T) {
	t.Parallel()
	base := filledInput()
	cache := newDecisionCache(16)
	lo, hi := validity(base)
	d := Decision{Candidates: []string{"cached"}}
	tested := 0
	for _, l := range leaves(t) {
		if l.path == "Now" {
			continue // the clock is not keyed: validity covers it (TestCacheValidityFields)
		}
		for name, change := range changes(l, base) {
			in := clone(base)
			change(in)
			if reflect.DeepEqual(in, base) {
				t.Fatalf("%s %s: the change changed nothing; the test proves nothing", l.path, name)
			}
			for _, ordinal := range []bool{false, true} {
				if ordinal && reflect.DeepEqual(withoutUnread(in), withoutUnread(base)) {
					continue // only facts the built-in policy does not read changed: a hit is right
				}
				for _, list := range []bool{false, true} {
					before, after := base, in
					if list {
						before, after = prepared(base), prepared(in)
					}
					cache.reset()
					cache.put(1, appendKey(nil, before, ordinal), lo, hi, d)
					if _, hit := cache.get(1, appendKey(nil, before, ordinal), before.Now); !hit {
						t.Fatal("the unchanged input misses the cache")
					}
					if _, hit := cache.get(1, appendKey(nil, after, ordinal), after.Now); hit {
						t.Errorf("%s (%s, ordinal lastUsed %v, ProfileList %v): the cache served the decision of the unchanged input; add the field to appendKey/appendProfiles in policy", l.path, name, ordinal, list)
					}
				}
			}
			tested++
		}
	}
	if tested < 40 {
		t.Fatalf("only %d changes tried; the walk lost fields", tested)
	}
}

// TestCacheValidityFields: every integer fact is either a time the
// built-in policy compares with now, and then bounds the validity window
// when it lies ahead, or is named in notTimeFields. A new time-valued
// fact forgotten in validity fails here.
func TestCacheValidityFields(t *testing.T) {
	t.Parallel()
	base := filledInput()
	for _, in := range []*Input{base, prepared(base)} {
		if lo, hi := validity(in); hi != math.MaxInt64 || lo > in.Now {
			t.Fatalf("filled input: validity [%d, %d) should be open-ended after now %d", lo, hi, in.Now)
		}
	}
	seen := map[string]bool{}
	for _, l := range leaves(t) {
		v := l.get(base)
		if l.path == "Now" || v.Kind() != reflect.Int64 && v.Kind() != reflect.Int && v.Kind() != reflect.Int32 {
			continue
		}
		seen[l.path] = true
		in := clone(base)
		ahead := in.Now + 500
		l.get(in).SetInt(ahead)
		for _, list := range []bool{false, true} {
			at := in
			if list {
				at = prepared(in)
			}
			_, hi := validity(at)
			bounds := hi == ahead
			if _, exempt := notTimeFields[l.path]; exempt {
				if bounds {
					t.Errorf("%s bounds the validity window (ProfileList %v) but notTimeFields says %q", l.path, list, notTimeFields[l.path])
				}
				continue
			}
			if !bounds {
				t.Errorf("%s: a time ahead of now does not end the cached decision's validity (ProfileList %v); add it to validity in policy/cache.go and NewProfileList in policy/profiles.go, or to notTimeFields if it is not a time", l.path, list)
			}
		}
	}
	for path := range notTimeFields {
		if !seen[path] {
			t.Errorf("notTimeFields names %s, which the input no longer has", path)
		}
	}
}
