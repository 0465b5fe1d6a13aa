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

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/dotenv"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/scrub"
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
	if err := dotenv.Upsert(filepath.Join(a.st.Dir, ".env"), envGatewayToken, token); err != nil {
		return "", false, fmt.Errorf("save gateway token: %w", err)
	}
	a.cfg.Gateway.Auth.Token = token
	return token, true, nil
}

func (a *app) onboardCmd() *ffcli.Command {
	flags := a.flagSet("onboard")
	var o onboardOptions
	flags.StringVar(&o.auth, "auth", "", "non-interactive: api-key, setup-token, token or oauth; the secret is read from stdin")
	flags.StringVar(&o.provider, "provider", "", "provider for --auth api-key|token|oauth; alone, the same as --auth api-key")
	flags.StringVar(&o.store, "store", "", "--auth api-key: env (<state>/.env, the default) or profile")
	flags.StringVar(&o.profileID, "profile-id", "", "profile id (default <provider>:default)")
	flags.StringVar(&o.expiresIn, "expires-in", "", "--auth token: when it expires, e.g. 8h or 365d")
	flags.StringVar(&o.agent, "agent", "", "agent id for profiles (default: agents.default)")
	flags.BoolVar(&o.install, "install-service", false, "install and start the gateway as a user service at the end")
	return leaf(&ffcli.Command{
		Name:       "onboard",
		ShortUsage: "opensoul onboard [--auth api-key|setup-token|token|oauth --provider P [--store env|profile]] [--install-service]",
		ShortHelp:  "First-time setup: state dir, config, gateway token, credentials, the gateway service.",
		LongHelp: `Creates ~/.opensoul (0700) and a starter opensoul.yaml and generates a
gateway token. On a terminal it then offers every way in: an API key
(kept in ~/.opensoul/.env (0600), where a gateway run by systemd/launchd
reads it, or as a profile), a Claude subscription setup-token, a token
pasted for any provider, and an OAuth login once this build has it. It
ends by offering to install and start the gateway service and showing
` + "`models status`" + `. Running it again keeps what is already there.

Examples (scripts: one choice per run, the secret on stdin):
  opensoul onboard
  echo "$KEY" | opensoul onboard --provider openrouter               # API key into <state>/.env
  echo "$KEY" | opensoul onboard --auth api-key --provider openai --store profile
  opensoul onboard --auth setup-token < token.txt
  opensoul onboard --auth token --provider acme --expires-in 30d < token.txt
  opensoul onboard --install-service`,
		FlagSet: flags,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("onboard reads secrets from stdin, not from arguments (arguments end up in shell history)")
			}
			if o.auth == "" && o.provider != "" {
				o.auth = authAPIKey
			}
			if err := a.onboardBase(); err != nil {
				return err
			}
			_, tty := isTerminal(a.stdin)
			var err error
			if o.auth == "" && tty {
				err = a.onboardMenu(ctx)
			} else {
				err = a.onboardWith(ctx, o)
			}
			if err != nil {
				return err
			}
			if err := a.onboardService(ctx, o.install, tty); err != nil {
				return err
			}
			return a.onboardStatus(ctx, o.agent)
		},
	})
}

// onboardBase makes the state dir, a starter config and the gateway token.
func (a *app) onboardBase() error {
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
	_, created, err := a.ensureGatewayToken()
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(a.stdout, "Generated a gateway token: OPENSOUL_GATEWAY_TOKEN in %s\n", filepath.Join(a.st.Dir, ".env"))
	}
	return nil
}

func (a *app) storeEnvKey(envFile, provider, raw string) error {
	secret, err := normalizeSecret(raw)
	if err != nil {
		return err
	}
	name := providers.For(provider).APIKeyVar()
	if err := dotenv.Upsert(envFile, name, secret); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Saved %s=%s in %s\n", name, scrub.Mask(secret), envFile)
	return nil
}
