package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
)

// starterConfig is written by onboard when there is no config yet.
const starterConfig = `# OpenSoul config. Every key, its default and what it does:
# see opensoul.yaml in the OpenSoul repository, or run: opensoul config show
gateway:
  listen: 127.0.0.1:18789
agents:
  defaults:
    model:
      primary: anthropic/claude-sonnet-5
`

// ensureGatewayToken returns the configured gateway token, or generates
// one and saves it as OPENSOUL_GATEWAY_TOKEN in <state>/.env (0600).
func (a *app) ensureGatewayToken() (token string, created bool, err error) {
	if err := a.load(); err != nil {
		return "", false, err
	}
	if a.cfg.Gateway.Auth.Token != "" {
		return a.cfg.Gateway.Auth.Token, false, nil
	}
	if err := a.st.EnsureDir(); err != nil {
		return "", false, err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	token = "osk-" + base64.RawURLEncoding.EncodeToString(buf)
	if err := upsertDotEnv(filepath.Join(a.st.Dir, ".env"), envGatewayToken, token); err != nil {
		return "", false, fmt.Errorf("save gateway token: %w", err)
	}
	a.cfg.Gateway.Auth.Token = token
	return token, true, nil
}

func (a *app) onboardCmd() *ffcli.Command {
	flags := a.flagSet("onboard")
	provider := flags.String("provider", "", "non-interactive: store an API key for this provider, read from stdin, in <state>/.env")
	return leaf(&ffcli.Command{
		Name:       "onboard",
		ShortUsage: "opensoul onboard [--provider P < key.txt]",
		ShortHelp:  "First-time setup: state dir, config, gateway token, API keys for the daemon.",
		LongHelp: `Creates ~/.opensoul (0700) and a starter opensoul.yaml, generates a gateway
token, and on a terminal asks for API keys, which it stores in
~/.opensoul/.env (0600) so a gateway run by systemd/launchd can read them.
Running it again keeps what is already there.

Examples:
  opensoul onboard
  echo "$KEY" | opensoul onboard --provider openrouter`,
		FlagSet: flags,
		Exec: func(ctx context.Context, args []string) error {
			if err := a.load(); err != nil {
				return err
			}
			if err := a.st.EnsureDir(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "State dir: %s\n", a.st.Dir)
			if _, err := os.Stat(a.cfgFile); errors.Is(err, fs.ErrNotExist) {
				if err := store.WriteFileAtomic(a.cfgFile, []byte(starterConfig)); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Wrote %s\n", a.cfgFile)
			} else {
				fmt.Fprintf(a.stdout, "Config: %s (kept)\n", a.cfgFile)
			}
			if _, created, err := a.ensureGatewayToken(); err != nil {
				return err
			} else if created {
				fmt.Fprintf(a.stdout, "Generated a gateway token: OPENSOUL_GATEWAY_TOKEN in %s\n", filepath.Join(a.st.Dir, ".env"))
			}
			envFile := filepath.Join(a.st.Dir, ".env")
			if *provider != "" {
				if err := validProvider(*provider); err != nil {
					return err
				}
				raw, err := a.readSecret("")
				if err != nil {
					return err
				}
				return a.storeEnvKey(envFile, *provider, raw)
			}
			if _, tty := isTerminal(a.stdin); tty {
				for _, pr := range providers.Builtin() {
					if !pr.Onboard {
						continue
					}
					p, name := pr.Name, pr.APIKeyVar()
					if v, ok := a.env[name]; ok {
						fmt.Fprintf(a.stdout, "%s: already set (from %s)\n", name, v.Source)
						continue
					}
					raw, err := a.readSecret(fmt.Sprintf("%s API key for %s (Enter to skip, input hidden): ", p, name))
					if err != nil {
						return err
					}
					if strings.TrimSpace(raw) == "" {
						continue
					}
					if err := a.storeEnvKey(envFile, p, raw); err != nil {
						return err
					}
				}
			}
			fmt.Fprintln(a.stdout, "\nNext:\n  opensoul models status     # see which credentials are in place\n  opensoul gateway           # start the gateway")
			return nil
		},
	})
}

func (a *app) storeEnvKey(envFile, provider, raw string) error {
	secret, err := normalizeSecret(raw)
	if err != nil {
		return err
	}
	name := providers.For(provider).APIKeyVar()
	if err := upsertDotEnv(envFile, name, secret); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Saved %s=%s in %s\n", name, gateway.Mask(secret), envFile)
	return nil
}
