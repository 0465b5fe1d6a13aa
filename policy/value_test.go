package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestValueMatchesJSON: the Rego input built directly (value) is the JSON
// encoding of Input, field for field, for an input with every field set
// (filledInput), so a field added to Input and forgotten in value fails.
func TestValueMatchesJSON(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]*Input{"filled": filledInput(), "prepared": prepared(filledInput())} {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ast.ValueFromReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := in.value(nil); got.Compare(want) != 0 {
			t.Errorf("%s: value() differs from the JSON encoding\n got: %v\nwant: %v", name, got, want)
		}
	}
}

// TestValueMemoNoticesEveryField: the engine's term memo reuses a
// profile's term (and the agent's usage term) only while its facts are
// the same; changing any field of a profile or of the agent's usage
// (every one, by reflection) after the memo has seen it still yields the
// JSON encoding of the changed input.
func TestValueMemoNoticesEveryField(t *testing.T) {
	t.Parallel()
	base := filledInput()
	for _, l := range leaves(t) {
		if !strings.HasPrefix(l.path, "Profiles[0].") && !strings.HasPrefix(l.path, "Agent.Usage") {
			continue
		}
		for name, change := range changes(l, base) {
			memo := &termMemo{}
			clone(base).value(memo) // the memo has seen the old facts
			in := clone(base)
			change(in)
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ast.ValueFromReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if got := in.value(memo); got.Compare(want) != 0 {
				t.Errorf("%s (%s): the memo served the profile's old term; compare the field in sameFacts and copy it in copyFacts", l.path, name)
			}
		}
	}
}
