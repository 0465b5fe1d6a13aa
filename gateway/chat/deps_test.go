package chat

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection: chat takes plain values and never reaches up
// into the CLI (or its config libraries).
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/opensoul/opensoul/cli" || strings.HasPrefix(dep, "github.com/knadh/koanf") || strings.HasPrefix(dep, "github.com/peterbourgon/ff") {
			t.Errorf("gateway/chat depends on %s", dep)
		}
	}
}
