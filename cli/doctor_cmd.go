package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/doctor"
	"github.com/opensoul/opensoul/cli/dotenv"
	"github.com/opensoul/opensoul/cli/service"
	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
)

func (a *app) doctorCmd() *ffcli.Command {
	fs := a.flagSet("doctor")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	asJSON := fs.Bool("json", false, "print JSON")
	fix := fs.Bool("fix", false, "show the repairs doctor can make, as diffs (a dry run unless --yes)")
	yes := fs.Bool("yes", false, "with --fix: apply the repairs, backing up each changed file")
	return leaf(&ffcli.Command{
		Name:       "doctor",
		ShortUsage: "opensoul doctor [--agent ID] [--json] [--fix [--yes]]",
		ShortHelp:  "Check the installation: state dir, config, .env, stores, credentials.",
		LongHelp: `Runs every check and prints what is wrong with how to fix it. Exits 1
when a check fails. Credentials are judged by the gateway's own policy
decision: which one serves each provider's model, what cools down (and for
which model) or is disabled, profiles the order in force leaves out, user
pins to profiles that cannot serve, environment keys never reached.

--fix shows the repairs it can make, each as a diff, and changes nothing;
--fix --yes applies them, first copying each file it edits to
<file>.bak-<time>. It never deletes a credential. Repairs: file and dir
modes (0600/0700), sessions unused for gateway.sessions.idleDays (or over
its other limits), user pins to profiles that no longer exist, profiles
missing from the agent store's explicit order, cooldowns and disables
recorded for a secret the profile no longer has, OAuth logins that expire
within 24h (or the refresh skew) refreshed once now, as the gateway would
(under the profile file's lock; a refused refresh marks the login), and (with the gateway
installed as a service) provider keys this shell has that the service
would miss: the service manager's environment, <state>/.env, env.vars and
env.shellEnv are compared with this shell, each gap is warned about, and
--fix copies it into <state>/.env (0600, the rest of the file kept; on a
terminal without --yes it asks per key).

Examples:
  opensoul doctor
  opensoul doctor --fix          # dry run: the diffs
  opensoul doctor --fix --yes    # apply, with backups`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if *yes && !*fix {
				return usageErr("--yes applies the repairs of --fix; run: opensoul doctor --fix --yes")
			}
			if *fix {
				if err := a.load(); err != nil {
					return err
				}
				ag, err := a.agentID(*agent)
				if err != nil {
					return err
				}
				s, err := a.doctorSetup()
				if err != nil {
					return err
				}
				return s.Fix(ctx, ag, *yes)
			}
			checks := doctor.Run(ctx, a.doctorHost(), *agent)
			failed := false
			for _, c := range checks {
				failed = failed || c.Status == "fail"
			}
			if *asJSON {
				if err := writeJSON(a.stdout, map[string]any{"ok": !failed, "checks": checks}); err != nil {
					return err
				}
			} else {
				for _, c := range checks {
					fmt.Fprintf(a.stdout, "[%-4s] %s: %s\n", c.Status, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(a.stdout, "       fix: %s\n", c.Fix)
					}
				}
			}
			if failed {
				return &exitError{code: 1}
			}
			return nil
		},
	})
}

// doctorHost wires `opensoul doctor` to this app: its state dir and its
// config, loaded once (cli/doctor never imports cli).
func (a *app) doctorHost() doctor.Host {
	return doctor.Host{StatePath: a.statePath, Load: a.doctorSetup}
}

// doctorSetup loads the config and hands doctor what it reads of the app.
func (a *app) doctorSetup() (*doctor.Setup, error) {
	if err := a.load(); err != nil {
		return nil, err
	}
	_, tty := isTerminal(a.stdin)
	s := &doctor.Setup{
		Stdin: a.stdin, Stdout: a.stdout, Interactive: tty, Environ: a.environ, Now: a.now,
		ConfigFile: a.cfgFile, TokenWarnings: a.tokenWarnings, Store: a.st, Env: a.env,
		Agent: a.agentID, Status: a.doctorStatus, Until: untilText,
		PolicyDirs: a.policyDirs(), Registry: a.registry,
		BackoffFile: a.backoffFile(), BackoffText: backoffText,
		Service: a.service, ServiceEnv: a.daemonEnvSources,
		ServiceVars: append(gateway.KnownProviderVars(a.providerNames()), envGatewayToken),
		SaveEnv:     dotenv.Upsert,
		RefreshSkew: ms(a.cfg.Auth.RefreshSkewMs), Refresher: a.loginRefresher,
	}
	if len(a.cfg.Agents.Defaults.Models) > 0 {
		s.AllowsProvider = a.allowsProvider
	}
	return s, nil
}

// doctorStatus is models status's report as doctor judges it.
func (a *app) doctorStatus(ctx context.Context, agent string, now time.Time) (*doctor.Status, error) {
	rep, err := a.buildStatus(ctx, agent, now)
	if err != nil {
		return nil, err
	}
	out := &doctor.Status{StorePath: rep.StorePath, Models: rep.Models}
	for _, ps := range rep.Providers {
		p := doctor.Provider{Provider: ps.Provider, InUse: ps.InUse, Model: ps.Model,
			Effective: doctor.Effective{Source: ps.Effective.Source, Serving: ps.Effective.Serving, Detail: ps.Effective.Detail}}
		for _, r := range ps.Profiles {
			p.Profiles = append(p.Profiles, doctor.Profile{ID: r.ID, Status: r.Status, Reason: r.Reason, Role: r.Role, Why: r.Why,
				Scope: r.Scope, DisabledUntil: r.DisabledUntil, DisabledReason: r.DisabledReason, Note: profileNote(r, now)})
		}
		out.Providers = append(out.Providers, p)
	}
	return out, nil
}

func (a *app) allowsProvider(p string) bool {
	for ref := range a.cfg.Agents.Defaults.Models {
		if q, _, ok := SplitModelRef(ref); ok && q == p {
			return true
		}
	}
	return false
}

// daemonEnvSources are the service's environment sources in the order
// the gateway reads them.
func (a *app) daemonEnvSources(ctx context.Context, svc *service.Service) ([]map[string]string, error) {
	managed, err := svc.Environ(ctx)
	if err != nil {
		// No user manager to ask (no session bus): the unit adds nothing.
		managed = map[string]string{}
	}
	dotState, err := dotenv.ReadFile(filepath.Join(a.st.Dir, ".env"))
	if err != nil {
		return nil, err
	}
	sources := []map[string]string{managed, dotState, a.cfg.Env.Vars}
	if a.cfg.Env.ShellEnv.Enabled {
		vars, err := loginShellEnv(a.environ, a.cfg.Env.ShellEnv.TimeoutMs, gateway.KnownProviderVars(a.providerNames()))
		if err == nil {
			sources = append(sources, vars)
		}
	}
	return sources, nil
}

// loginRefresher refreshes logins as the gateway does, with the OAuth
// clients modules declare and config overrides.
func (a *app) loginRefresher(ctx context.Context) *keep.Refresher {
	reg, _, _ := a.registry(ctx)
	return &keep.Refresher{
		Store: a.st, Skew: ms(a.cfg.Auth.RefreshSkewMs), Now: a.now,
		Client: func(provider string) (oauth.Client, bool) {
			c, ok := a.cfg.OAuthClients(a.moduleOAuth(ctx, reg, provider))[provider]
			return c, ok
		},
	}
}
