package cli

import (
	"os"
	"slices"
	"strings"

	"github.com/knadh/koanf/v2"

	"github.com/opensoul/opensoul/cli/dotenv"
	"github.com/opensoul/opensoul/gateway"
)

// cwdDotEnv reads the working directory's .env (path). A service's
// working directory is whatever its manager chose, so provider keys and
// gateway tokens found there are dropped (and named, never their values,
// for the caller to warn about) unless env.cwdDotenv is true in k, the
// other layers merged; other variables and OPENSOUL_* settings stay. A
// ./.env that is <state>/.env itself is already read as that.
func cwdDotEnv(path, statePath string, k *koanf.Koanf) (vars map[string]string, dropped []string, err error) {
	vars, err = dotenv.ReadFile(path)
	if err != nil || len(vars) == 0 {
		return vars, nil, err
	}
	if sameFile(path, statePath) {
		return map[string]string{}, nil, nil
	}
	if k.Bool("env" + koanfDelim + "cwdDotenv") {
		return vars, nil, nil
	}
	for name := range vars {
		if secretEnvName(name, k.MapKeys("providers")) {
			dropped = append(dropped, name)
			delete(vars, name)
		}
	}
	slices.Sort(dropped)
	return vars, dropped, nil
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
