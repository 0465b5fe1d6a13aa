package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSubpackagesTakePlainValues: cli's subpackages get what they need
// through their own small structs (doctor.Setup, login.Host, monitor.Host,
// connect.Setup, service.Options) and never reach the command line or
// config libraries: flags and koanf stay in cli.
func TestSubpackagesTakePlainValues(t *testing.T) {
	t.Parallel()
	pkgs := []string{"./connect", "./doctor", "./login", "./monitor", "./service"}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/knadh/koanf") || strings.HasPrefix(dep, "github.com/peterbourgon/ff") {
			t.Errorf("a subpackage of cli (%s) depends on %s", strings.Join(pkgs, " "), dep)
		}
	}
}
