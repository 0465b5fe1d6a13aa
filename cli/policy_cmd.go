package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// policyCmd is `opensoul policy`: test, check and explain the Rego
// policies that choose a credential for each request.
func (a *app) policyCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "policy",
		ShortUsage: "opensoul policy <test|check|explain> [flags]",
		ShortHelp:  "Test, check and explain the credential selection policies.",
		LongHelp: `The gateway picks a credential for each request by evaluating
data.opensoul.select.decision: the built-in policy plus every *.rego file
under policy.dirs (default <state>/policies). Add rules in package
opensoul.rules: "deny contains {"profile": id, "reason": "..."}" removes a
profile, "prefer contains id" moves one ahead. A running gateway picks up
edited files; a set that does not compile is refused and logged.

Examples:
  opensoul policy check
  opensoul policy test
  opensoul policy explain --provider anthropic --agent cron`,
		FlagSet:     a.flagSet("policy"),
		Subcommands: []*ffcli.Command{a.policyTestCmd(), a.policyCheckCmd(), a.policyExplainCmd()},
	})
}

func (a *app) policyTestCmd() *ffcli.Command {
	fs := a.flagSet("test")
	verbose := fs.Bool("v", false, "print every test, with traces of failures")
	return leaf(&ffcli.Command{
		Name:       "test",
		ShortUsage: "opensoul policy test [-v] [DIR|FILE ...]",
		ShortHelp:  "Run the Rego tests (test_* rules) of the policies.",
		LongHelp: `Compiles the built-in policies with the given directories or files
(default: policy.dirs, else <state>/policies), *_test.rego included, and
runs every rule named test_*, reporting like "opa test". Exits 1 when a
test fails or a file does not compile.

Examples:
  opensoul policy test
  opensoul policy test -v ~/.opensoul/policies
  opensoul policy test policies/examples`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := existing("policy test", args); err != nil {
				return err
			}
			dirs := args
			if len(dirs) == 0 {
				if err := a.load(); err != nil {
					return err
				}
				dirs = a.policyDirs()
			}
			failed, err := policy.Test(ctx, dirs, a.stdout, *verbose)
			if err != nil {
				return err
			}
			if failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	})
}

func (a *app) policyCheckCmd() *ffcli.Command {
	fs := a.flagSet("check")
	return leaf(&ffcli.Command{
		Name:       "check",
		ShortUsage: "opensoul policy check [DIR|FILE ...]",
		ShortHelp:  "Compile every policy the gateway would load, and list them.",
		LongHelp: `Compiles the built-in policies with policy.dirs (or the given
directories or files), tests included, exactly as the gateway does: with
http.send, net.* and opa.runtime removed. A problem is reported as
file:line:col with OPA's message, and the exit code is 1.

Examples:
  opensoul policy check
  opensoul policy check ./my-policies`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := existing("policy check", args); err != nil {
				return err
			}
			dirs := args
			if len(dirs) == 0 {
				if err := a.load(); err != nil {
					return err
				}
				dirs = a.policyDirs()
			}
			files, err := policy.Check(ctx, dirs)
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(a.stdout, f)
			}
			fmt.Fprintf(a.stdout, "ok: %d policy files compile\n", len(files))
			return nil
		},
	})
}

func (a *app) policyExplainCmd() *ffcli.Command {
	fs := a.flagSet("explain")
	provider := fs.String("provider", "", "provider to choose a credential for (required)")
	agentFlag := fs.String("agent", "", "agent (default: the configured default agent)")
	session := fs.String("session", "", "session id, to apply its credential pin")
	model := fs.String("model", "", "model requested (default: the session's or the configured model for this provider)")
	client := fs.String("client", "", "the calling client, NAME[/VERSION] as input.request.client names it (claude-code, codex, curl, …; default: none)")
	asJSON := fs.Bool("json", false, `print {"input": ..., "decision": ...}`)
	return leaf(&ffcli.Command{
		Name:       "explain",
		ShortUsage: "opensoul policy explain --provider P [--agent A] [--session S] [--model M] [--client C] [--json]",
		ShortHelp:  "Show the facts a request would be decided on and the decision, with a reason for every profile.",
		LongHelp: `Builds the policy input the gateway would build for a request now (the
same resolver: store, usage state, session pin, environment) and
evaluates the policies over it. The input holds no secrets.

Examples:
  opensoul policy explain --provider anthropic
  opensoul policy explain --provider anthropic --agent cron --model claude-opus-5
  opensoul policy explain --provider anthropic --session my-chat --json
  opensoul policy explain --provider anthropic --client claude-code   # a profile scoped to Claude Code serves it`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("policy explain takes no arguments (got %q)", args[0])
			}
			if *provider == "" {
				return usageErr("policy explain: --provider is required")
			}
			now := time.Now()
			snap, q, err := a.explainQuery(*provider, *agentFlag, *session, *model)
			if err != nil {
				return err
			}
			q.Client.Name, q.Client.Version, _ = strings.Cut(*client, "/")
			r, err := a.resolver(ctx, now)
			if err != nil {
				return err
			}
			res, err := r.Resolve(ctx, snap, q, now)
			if err != nil {
				return err
			}
			others, err := a.otherModels(ctx, r, snap, q, now)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(a.stdout, struct {
					Input       *policy.Input             `json:"input"`
					Decision    policy.Decision           `json:"decision"`
					Serving     string                    `json:"serving"`
					Source      string                    `json:"source"`
					OtherModels []gateway.ModelResolution `json:"otherModels"`
				}{res.Input, res.Decision, res.Serving, res.Source, others})
			}
			if err := policy.WriteExplain(a.stdout, res.Input, res.Decision); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\nServes %s/%s: %s\n", q.Provider, cmpOrWord(q.Model, "(any model)"), cmpOrWord(res.Serving, "nothing can serve"))
			for _, o := range others {
				fmt.Fprintf(a.stdout, "Serves %s: %s (a cooldown is recorded for this model, or it was requested lately; explain it with --model %s)\n", o.Ref, cmpOrWord(o.Serving, "nothing can serve"), o.Model)
			}
			return nil
		},
	})
}

// explainQuery builds the would-be request the way the gateway sees it:
// the session's pin and model override, else the configured model.
func (a *app) explainQuery(provider, agentFlag, sessionID, model string) (*gateway.Snapshot, gateway.Query, error) {
	agent, snap, err := a.agentSnapshot(agentFlag)
	if err != nil {
		return nil, gateway.Query{}, err
	}
	req := gateway.Query{Agent: agent, Session: sessionID, Provider: provider, Model: model}
	if sessionID != "" {
		sessions, err := a.st.LoadSessions(agent)
		if err != nil {
			return nil, gateway.Query{}, err
		}
		sess, known := sessions.Sessions[sessionID]
		req.SessionNew = !known
		if known {
			req.Visit.Started = sess.CreatedAt // the client and count live in the gateway's memory only
			if c, ok := snap.Profiles[sess.AuthProfileOverride]; ok && sess.AuthProfileOverride != "" && c.Provider == provider {
				req.Pin = &policy.Pin{Profile: sess.AuthProfileOverride, Source: cmp.Or(sess.AuthProfileOverrideSource, store.PinAuto)}
			}
			if p, m, ok := SplitModelRef(sess.ModelOverride); ok && p == provider && req.Model == "" {
				req.Model = m
			}
		}
	}
	if p, m, ok := SplitModelRef(a.cfg.Agents.Defaults.Model.Primary); ok && p == provider && req.Model == "" {
		req.Model = m
	}
	return snap, req, nil
}

// otherModels resolves the provider's other models with a recorded
// cooldown, which a client may ask for instead of the configured one.
func (a *app) otherModels(ctx context.Context, r gateway.Resolver, snap *gateway.Snapshot, q gateway.Query, now time.Time) ([]gateway.ModelResolution, error) {
	out := []gateway.ModelResolution{}
	for _, ref := range gateway.Models(snap, nil, now) {
		p, m, _ := strings.Cut(ref, "/")
		if p != q.Provider || m == "" || m == q.Model {
			continue
		}
		o := q
		o.Model = m
		res, err := r.Resolve(ctx, snap, o, now)
		if err != nil {
			return nil, err
		}
		out = append(out, gateway.ModelResolution{Ref: ref, Resolution: res})
	}
	return out, nil
}

// existing fails for a named directory or file that does not exist: a
// typo must not pass as "no policies, every test passes".
func existing(cmd string, paths []string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("%s: %s: %w", cmd, p, errors.Unwrap(err))}
		}
	}
	return nil
}
