package policy

import (
	"bytes"
	"context"
	"testing"
)

// TestBuiltinRegoTests runs the Rego unit tests beside the built-in policy.
func TestBuiltinRegoTests(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	failed, err := Test(context.Background(), nil, &out, false)
	if err != nil {
		t.Fatalf("Test: %v\n%s", err, out.String())
	}
	if failed != 0 {
		t.Fatalf("%d Rego tests failed:\n%s", failed, out.String())
	}
}
