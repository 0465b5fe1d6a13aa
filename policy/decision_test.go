package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func twoProfiles() *Input {
	return &Input{
		Session:  SessionFacts{Pin: &Pin{Profile: "p:pinned", Source: "user"}},
		Profiles: []ProfileFacts{{ID: "p:a"}, {ID: "p:b"}},
	}
}

var decisionCases = []struct {
	name string
	json string
	want string // substring of the error; "" means valid
}{
	{"valid", `{"candidates":["p:a"],"cooling":["p:b"],"strict":false,"reasons":{"p:a":"x","p:b":"y"}}`, ""},
	{"reason for the pinned id", `{"candidates":[],"cooling":[],"strict":true,"reasons":{"p:a":"x","p:b":"y","p:pinned":"z"}}`, ""},
	{"extra keys ignored", `{"candidates":[],"cooling":[],"strict":true,"reasons":{"p:a":"x","p:b":"y"},"debug":1}`, ""},
	{"not an object", `["p:a"]`, "want an object, got array"},
	{"candidates missing", `{"cooling":[],"strict":false,"reasons":{}}`, "candidates is missing"},
	{"candidates not an array", `{"candidates":"p:a","cooling":[],"strict":false,"reasons":{}}`, "candidates: want an array"},
	{"candidate not a string", `{"candidates":[1],"cooling":[],"strict":false,"reasons":{}}`, "candidates[0]: want a profile id, got number"},
	{"unknown candidate", `{"candidates":["p:zzz"],"cooling":[],"strict":false,"reasons":{}}`, `candidates[0]: unknown profile "p:zzz"`},
	{"pinned id is no candidate", `{"candidates":["p:pinned"],"cooling":[],"strict":true,"reasons":{}}`, `unknown profile "p:pinned"`},
	{"duplicate candidate", `{"candidates":["p:a","p:a"],"cooling":[],"strict":false,"reasons":{}}`, `candidates[1]: profile "p:a" is already listed in candidates`},
	{"candidate also cooling", `{"candidates":["p:a"],"cooling":["p:a"],"strict":false,"reasons":{}}`, `cooling[0]: profile "p:a" is already listed in candidates`},
	{"cooling missing", `{"candidates":[],"strict":false,"reasons":{}}`, "cooling is missing"},
	{"strict missing", `{"candidates":[],"cooling":[],"reasons":{}}`, "strict is missing"},
	{"strict not a boolean", `{"candidates":[],"cooling":[],"strict":"yes","reasons":{}}`, "strict: want a boolean, got string"},
	{"reasons missing", `{"candidates":[],"cooling":[],"strict":false}`, "reasons is missing"},
	{"reasons not an object", `{"candidates":[],"cooling":[],"strict":false,"reasons":[]}`, "reasons: want an object"},
	{"reason not a string", `{"candidates":[],"cooling":[],"strict":false,"reasons":{"p:a":1,"p:b":"y"}}`, `reasons["p:a"]: want a string, got number`},
	{"reason for unknown profile", `{"candidates":[],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y","p:c":"z"}}`, `reasons: unknown profile "p:c"`},
	{"rotate among two", `{"candidates":["p:a","p:b"],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y"},"rotate":2}`, ""},
	{"rotate zero without candidates", `{"candidates":[],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y"},"rotate":0}`, ""},
	{"rotate not a number", `{"candidates":["p:a"],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y"},"rotate":"all"}`, "rotate: want a number of candidates, got string"},
	{"rotate not whole", `{"candidates":["p:a"],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y"},"rotate":1.5}`, "rotate: want a whole number"},
	{"rotate past the candidates", `{"candidates":["p:a"],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y"},"rotate":2}`, "rotate: 2 is not between 1 and the 1 candidates"},
	{"rotate zero with candidates", `{"candidates":["p:a"],"cooling":[],"strict":false,"reasons":{"p:a":"x","p:b":"y"},"rotate":0}`, "rotate: 0 is not between 1"},
	{"reason missing for a profile", `{"candidates":[],"cooling":[],"strict":false,"reasons":{"p:a":"x"}}`, `no reason for profile "p:b"`},
}

func parseJSONDecision(t testing.TB, s string) (Decision, error) {
	t.Helper()
	v, err := ast.ParseTerm(s)
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return parseDecision(v.Value, twoProfiles())
}

func TestParseDecision(t *testing.T) {
	t.Parallel()
	for _, tt := range decisionCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseJSONDecision(t, tt.json)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), DecisionRule):
				t.Fatalf("err = %v does not name %s", err, DecisionRule)
			}
		})
	}
}

// FuzzParseDecision feeds arbitrary JSON to the decision parser: it must
// never panic, and whatever it accepts must satisfy the contract.
func FuzzParseDecision(f *testing.F) {
	for _, tt := range decisionCases {
		f.Add(tt.json)
	}
	in := twoProfiles()
	known := map[string]bool{"p:a": true, "p:b": true}
	f.Fuzz(func(t *testing.T, s string) {
		var x any
		if json.Unmarshal([]byte(s), &x) != nil {
			return
		}
		v, err := ast.InterfaceToValue(x)
		if err != nil {
			return
		}
		d, err := parseDecision(v, in)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, id := range append(append([]string(nil), d.Candidates...), d.Cooling...) {
			if !known[id] || seen[id] {
				t.Fatalf("accepted unknown or repeated id %q in %s", id, s)
			}
			seen[id] = true
		}
		if eq := d.Equal(); len(eq) != d.Rotate || (len(d.Candidates) > 0 && d.Rotate < 1) {
			t.Fatalf("accepted rotate %d for %d candidates: %s", d.Rotate, len(d.Candidates), s)
		}
		for id := range known {
			if _, ok := d.Reasons[id]; !ok {
				t.Fatalf("accepted a decision without a reason for %s: %s", id, s)
			}
		}
	})
}

// TestExplainNamesEqualRank: explain says which leading candidates the
// gateway rotates among, and says nothing of it when there is one.
func TestExplainNamesEqualRank(t *testing.T) {
	t.Parallel()
	in := twoProfiles()
	for _, tt := range []struct {
		rotate int
		want   bool
	}{{2, true}, {1, false}} {
		d := Decision{Candidates: []string{"p:a", "p:b"}, Reasons: map[string]string{"p:a": "x", "p:b": "y"}, Rotate: tt.rotate}
		var b strings.Builder
		if err := WriteExplain(&b, in, d); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "the first 2 are of equal rank"); got != tt.want {
			t.Errorf("rotate %d: explain mentions equal rank %v, want %v:\n%s", tt.rotate, got, tt.want, b.String())
		}
	}
}
