package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// policyCase is one file in testdata/policy: an input, the policies loaded
// besides the built-in ones (paths from the repository root), and the
// expected decision or error.
type policyCase struct {
	Description string    `json:"description"`
	Policies    []string  `json:"policies"`
	Input       Input     `json:"input"`
	Decision    *Decision `json:"decision"` // reasons are checked only when given
	Error       string    `json:"error"`    // a substring of the expected error
}

const casesDir = "../testdata/policy"

func loadCases(t testing.TB) map[string]policyCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(casesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in %s: %v", casesDir, err)
	}
	cases := make(map[string]policyCase, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c policyCase
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if (c.Decision == nil) == (c.Error == "") {
			t.Fatalf("%s: give exactly one of decision and error", f)
		}
		cases[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return cases
}

// TestCases runs every data-driven case through a caching and a
// non-caching engine (twice each, so the second cached call is a hit).
func TestCases(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	engines := map[string][2]*Engine{}
	enginesFor := func(t *testing.T, policies []string) [2]*Engine {
		key := strings.Join(policies, "\n")
		mu.Lock()
		defer mu.Unlock()
		if es, ok := engines[key]; ok {
			return es
		}
		dirs := make([]string, len(policies))
		for i, p := range policies {
			dirs[i] = filepath.Join("..", p)
		}
		es := [2]*Engine{newEngine(t, Options{Dirs: dirs}), newEngine(t, Options{Dirs: dirs, CacheSize: -1})}
		engines[key] = es
		return es
	}
	for name, c := range loadCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, e := range enginesFor(t, c.Policies) {
				for range 2 {
					checkCase(t, e, c)
				}
			}
		})
	}
}

func checkCase(t *testing.T, e *Engine, c policyCase) {
	t.Helper()
	in := c.Input
	got, err := e.Decide(context.Background(), &in)
	if c.Error != "" {
		if err == nil || !strings.Contains(err.Error(), c.Error) {
			t.Fatalf("%s\nerr = %v, want one containing %q", c.Description, err, c.Error)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s\nDecide: %v", c.Description, err)
	}
	want := *c.Decision
	if want.Reasons == nil {
		want.Reasons = got.Reasons
	}
	if !equalDecision(got, want) {
		gb, _ := json.MarshalIndent(got, "", "  ")
		wb, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s\n got %s\nwant %s", c.Description, gb, wb)
	}
}
