package cli

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/login"
	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/wasm"
)

func (a *app) loginCmd() *ffcli.Command {
	fs := a.flagSet("login")
	provider := fs.String("provider", "", "provider to sign in to (openai: the Codex / ChatGPT sign-in)")
	id := fs.String("profile-id", "", "profile id (default <provider>:<email>, else <provider>:default)")
	device := fs.Bool("device", false, "use the device code flow: sign in on any other device")
	noBrowser := fs.Bool("no-browser", false, "print the URL and paste back the address the browser ends on (no display, SSH)")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the sign-in")
	return leaf(&ffcli.Command{
		Name:       "login",
		ShortUsage: "opensoul models auth login --provider P [--profile-id ID] [--device] [--no-browser] [--agent ID]",
		ShortHelp:  "Sign in with the provider's OAuth (browser, pasted redirect or device code) and store the login.",
		LongHelp: `Signs in with OAuth 2.0: the authorization code flow with PKCE, answered
on a loopback address (the port the provider's client is registered with),
or with --no-browser by pasting the address the browser ends on (for SSH
and hosts without a display; chosen by itself when there is no display),
or with --device by entering a code on any other device.

The login is stored as an oauth profile <provider>:<email> (or
<provider>:default) in auth-profiles.json (mode 0600); no token is
printed. The gateway refreshes it before it expires and when a provider
answers 401, each refresh token once across every process.

Providers: openai (the Codex sign-in for ChatGPT plans; its requests go to
the ChatGPT backend). Any other provider signs in once providers.<p>.oauth
in opensoul.yaml describes its OAuth client. Anthropic subscriptions use
claude setup-token instead (opensoul models auth setup-token).

Examples:
  opensoul models auth login --provider openai
  opensoul models auth login --provider openai --no-browser       # over SSH
  opensoul models auth login --provider acme --device --profile-id acme:work`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("login takes no arguments, got %q", args)
			}
			if err := validProvider(*provider); err != nil {
				return err
			}
			if *device && *noBrowser {
				return usageErr("--device and --no-browser are two different ways to sign in; choose one")
			}
			if err := a.load(); err != nil {
				return err
			}
			if *id != "" && (!strings.HasPrefix(*id, *provider+":") || len(*id) == len(*provider)+1) {
				return usageErr("--profile-id %q must look like %s:<name>", *id, *provider)
			}
			return a.signIn(ctx, *agent, login.Request{Provider: *provider, ID: *id, Device: *device, NoBrowser: *noBrowser, Timeout: *timeout})
		},
	})
}

// signIn runs the provider's OAuth flow and stores the login as a profile
// of the agent (agentFlag "": agents.default). The config must be loaded.
func (a *app) signIn(ctx context.Context, agentFlag string, r login.Request) error {
	ag, err := a.agentID(agentFlag)
	if err != nil {
		return err
	}
	return a.loginHost().SignIn(ctx, ag, r)
}

// loginHost wires login and import to this app (cli/login never imports
// cli). The config must be loaded.
func (a *app) loginHost() *login.Host {
	return &login.Host{
		Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr, Environ: a.environ,
		Store: a.st, ConfigFile: a.cfgFile, Warnf: a.warnf,
		Record: func(id, provider, typ string) error { return upsertProfileMeta(a.cfgFile, id, provider, typ) },
		Clients: func(ctx context.Context, providers ...string) map[string]oauth.Client {
			reg, _, _ := a.registry(ctx)
			return a.cfg.OAuthClients(a.moduleOAuth(ctx, reg, providers...))
		},
		Modules: func() []string { return append(wasm.BuiltinNames(), slices.Collect(maps.Keys(a.modulePaths()))...) },
		Prober:  a.prober,
	}
}

// runProbes is `models status --probe` over the profiles rep shows (of
// provider only, when set); the results go in rep.Probes.
func (a *app) runProbes(ctx context.Context, rep *statusReport, provider string, timeout time.Duration) error {
	var targets []login.ProbeTarget
	for _, ps := range rep.Providers {
		t := login.ProbeTarget{Provider: ps.Provider}
		if _, model, ok := SplitModelRef(ps.Model); ok {
			t.Model = model
		}
		for _, pr := range ps.Profiles {
			t.Profiles = append(t.Profiles, pr.ID)
		}
		targets = append(targets, t)
	}
	probes, err := a.loginHost().Probe(ctx, rep.Agent, targets, provider, timeout)
	if ue := (*login.UsageError)(nil); errors.As(err, &ue) {
		return usageErr("%s", ue.Msg)
	}
	if err != nil {
		return err
	}
	rep.Probes = probes
	return nil
}

// prober presents credentials the way `opensoul gateway` would with this
// config: the same base URLs, provider modules and OAuth clients.
func (a *app) prober(ctx context.Context) (*gateway.Prober, error) {
	o := gateway.ProberOptions{Store: a.st, Config: gatewayConfig(a.cfg, "127.0.0.1:0"), Now: a.now}
	if reg, _, err := a.registry(ctx); err == nil && reg != nil {
		o.Modules = reg
	}
	return gateway.NewProber(o)
}

// resetUsage drops the cooldowns and disables recorded for a profile's
// old secret (login.Host.ResetUsage).
func (a *app) resetUsage(agent, id string) { a.loginHost().ResetUsage(agent, id) }

// moduleOAuth is the OAuth clients that the modules of providers
// declare in their info answer. A declaration that is not valid JSON for a
// client is warned about and skipped.
func (a *app) moduleOAuth(ctx context.Context, reg *wasm.Registry, providers ...string) map[string]oauth.Client {
	if reg == nil {
		return nil
	}
	out := map[string]oauth.Client{}
	for _, name := range providers {
		raw := reg.OAuth(ctx, name)
		if len(raw) == 0 {
			continue
		}
		var c oauth.Client
		if err := json.Unmarshal(raw, &c); err != nil {
			a.warnf("provider module %s: its info's oauth is not an OAuth client (%v); ignored", name, err)
			continue
		}
		out[name] = c
	}
	return out
}
