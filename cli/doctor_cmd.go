package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// doctorCheck is one finding of `opensoul doctor`.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok | warn | fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

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
				if err := a.runFix(a.stdout, ag, *yes); err != nil {
					return err
				}
				return a.fixServiceEnv(ctx, *yes)
			}
			checks := a.runDoctor(ctx, *agent)
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

func (a *app) runDoctor(ctx context.Context, agentFlag string) []doctorCheck {
	var checks []doctorCheck
	add := func(name, status, detail, fix string) {
		checks = append(checks, doctorCheck{name, status, detail, fix})
	}
	stateDir, err := a.statePath()
	if err != nil {
		add("state dir", "fail", err.Error(), "set OPENSOUL_STATE_DIR")
		return checks
	}
	switch fi, err := os.Stat(stateDir); {
	case errors.Is(err, fs.ErrNotExist):
		add("state dir", "warn", stateDir+" does not exist yet", "opensoul onboard")
	case err != nil:
		add("state dir", "fail", err.Error(), "")
	case fi.Mode().Perm()&0o077 != 0:
		add("state dir", "fail", fmt.Sprintf("%s is mode %o; others can read your credentials", stateDir, fi.Mode().Perm()), "chmod 700 "+stateDir)
	default:
		add("state dir", "ok", stateDir, "")
	}
	envFile := filepath.Join(stateDir, ".env")
	if fi, err := os.Stat(envFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		add(".env", "fail", fmt.Sprintf("%s is mode %o", envFile, fi.Mode().Perm()), "chmod 600 "+envFile)
	}
	if err := a.load(); err != nil {
		add("config", "fail", err.Error(), "edit the file named above, then: opensoul config validate")
		return checks
	}
	if _, err := os.Stat(a.cfgFile); err != nil {
		add("config", "warn", a.cfgFile+" not found; using built-in defaults", "opensoul onboard")
	} else {
		add("config", "ok", a.cfgFile, "")
	}
	for _, w := range a.tokenWarnings {
		add("client token", "warn", w, "unset it where the gateway runs; clients take the token as ANTHROPIC_AUTH_TOKEN")
	}
	ag, err := a.agentID(agentFlag)
	if err != nil {
		add("agent", "fail", err.Error(), "")
		return checks
	}
	for _, p := range []string{a.st.ProfilesPath(ag), a.st.StatePath(ag)} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			add("store", "fail", fmt.Sprintf("%s is mode %o", p, fi.Mode().Perm()), "chmod 600 "+p)
		}
	}
	rep, err := a.buildStatus(ctx, ag, time.Now())
	if err != nil {
		add("store", "fail", err.Error(), "")
		return checks
	}
	add("store", "ok", rep.StorePath, "")
	for _, c := range a.credentialChecks(rep, ag, time.Now()) {
		add(c.Name, c.Status, c.Detail, c.Fix)
	}
	a.staleStateChecks(ag, add) // doctor_fix_state.go
	if files, err := policy.Check(ctx, a.policyDirs()); err != nil {
		add("policies", "fail", err.Error(), "fix the Rego named above, then: opensoul policy check")
	} else {
		add("policies", "ok", fmt.Sprintf("%d file(s) compile", len(files)), "")
	}
	if reg, errs, err := a.registry(ctx); err != nil {
		add("provider modules", "fail", err.Error(), "")
	} else {
		errs = append(errs, reg.Load(ctx)...)
		for _, e := range errs {
			add("provider modules", "fail", e.Error(), "fix or remove the module file named above")
		}
		if len(errs) == 0 {
			add("provider modules", "ok", "every module loads", "")
		}
	}
	a.moduleBackoffChecks(add)
	a.serviceEnvChecks(ctx, add)
	return checks
}

// moduleBackoffChecks warns about provider modules the running gateway is
// skipping because their calls kept hitting the deadline or trapping.
func (a *app) moduleBackoffChecks(add func(name, status, detail, fix string)) {
	skipped, err := wasm.ReadBackoffs(a.backoffFile())
	if err != nil {
		add("provider module backoff", "warn", err.Error(), "delete the file; a running gateway rewrites it")
	}
	for _, b := range skipped {
		add("provider module "+b.Provider, "warn", backoffText(b),
			"fix or replace "+b.Module+" (the gateway loads a changed file without a restart), or remove providers."+b.Provider+".module")
	}
}
