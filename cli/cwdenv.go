package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/knadh/koanf/v2"

	"github.com/opensoul/opensoul/gateway"
)

// cwdDotEnv reads ./.env for load. A service's working directory is
// whatever its manager chose, so provider keys and gateway tokens found
// there are dropped (with a warning naming them, never their values)
// unless env.cwdDotenv is true; other variables and OPENSOUL_* settings
// stay. A ./.env that is <state>/.env itself is already read as that.
func (a *app) cwdDotEnv(k *koanf.Koanf, stateDir string) (map[string]string, error) {
	vars, err := readDotEnvFile(".env")
	if err != nil || len(vars) == 0 {
		return vars, err
	}
	if sameFile(".env", filepath.Join(stateDir, ".env")) {
		return map[string]string{}, nil
	}
	if k.Bool("env" + koanfDelim + "cwdDotenv") {
		return vars, nil
	}
	var dropped []string
	for name := range vars {
		if secretEnvName(name, k.MapKeys("providers")) {
			dropped = append(dropped, name)
			delete(vars, name)
		}
	}
	if len(dropped) > 0 && !a.cwdWarned {
		a.cwdWarned = true
		slices.Sort(dropped)
		a.warnf("ignoring %s in ./.env: provider keys and gateway tokens come from the environment, %s or env.vars (set env.cwdDotenv: true to read them from the working directory)",
			strings.Join(dropped, ", "), filepath.Join(stateDir, ".env"))
	}
	return vars, nil
}

// secretEnvName: a provider's key variable, the gateway token, or an
// OPENSOUL_* override of a key or token setting.
func secretEnvName(name string, providers []string) bool {
	if name == envGatewayToken || slices.Contains(gateway.KnownProviderVars(providers), name) {
		return true
	}
	up := strings.ReplaceAll(strings.ToUpper(name), "_", "")
	return strings.HasPrefix(up, "OPENSOULGATEWAY") && strings.Contains(up, "AUTH") ||
		strings.HasPrefix(up, "OPENSOULPROVIDERS") && strings.HasSuffix(up, "APIKEY")
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
