package cli

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
)

// sessionsCmd is `opensoul sessions`: the chat sessions the gateway keeps
// per agent in sessions.json (model override and credential pin).
func (a *app) sessionsCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "sessions",
		ShortUsage: "opensoul sessions <list|show|reset> [--agent ID] [--json]",
		ShortHelp:  "List, show or reset the gateway's chat sessions.",
		LongHelp: `A session is named by the x-opensoul-session header (callers that send
none share the agent's "default" session). It remembers the model set
with /model, and the credential pinned to it: by you with
/model <model>@<profile> (strict), or automatically, the first profile
that succeeded in it. Sessions live in <state>/agents/<id>/sessions.json;
a running gateway applies a reset within a second.

Examples:
  opensoul sessions list
  opensoul sessions show default --agent main
  opensoul sessions reset my-chat`,
		FlagSet:     a.flagSet("sessions"),
		Subcommands: []*ffcli.Command{a.sessionsListCmd(), a.sessionsShowCmd(), a.sessionsResetCmd()},
	})
}

// sessionRow is one session in JSON output.
type sessionRow struct {
	ID                        string `json:"id"`
	ModelOverride             string `json:"modelOverride,omitempty"`
	AuthProfileOverride       string `json:"authProfileOverride,omitempty"`
	AuthProfileOverrideSource string `json:"authProfileOverrideSource,omitempty"`
	CreatedAt                 int64  `json:"createdAt,omitempty"`
	UpdatedAt                 int64  `json:"updatedAt,omitempty"`
}

func rowOf(id string, s *store.Session) sessionRow {
	return sessionRow{ID: id, ModelOverride: s.ModelOverride, AuthProfileOverride: s.AuthProfileOverride,
		AuthProfileOverrideSource: s.AuthProfileOverrideSource, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

type sessionsFlags struct {
	agent  *string
	asJSON *bool
}

func (a *app) sessionsFlagSet(name string) (*flag.FlagSet, sessionsFlags) {
	fs := a.flagSet(name)
	return fs, sessionsFlags{
		agent:  fs.String("agent", "", "agent id (default: agents.default)"),
		asJSON: fs.Bool("json", false, "print JSON"),
	}
}

// loadSessions loads config and the agent's sessions.
func (a *app) loadSessions(f sessionsFlags) (string, *store.Sessions, error) {
	if err := a.load(); err != nil {
		return "", nil, err
	}
	agent, err := a.agentID(*f.agent)
	if err != nil {
		return "", nil, err
	}
	ss, err := a.st.LoadSessions(agent)
	if err != nil {
		return "", nil, err
	}
	return agent, ss, nil
}

func (a *app) sessionsListCmd() *ffcli.Command {
	fs, f := a.sessionsFlagSet("sessions list")
	return leaf(&ffcli.Command{
		Name:       "list",
		ShortUsage: "opensoul sessions list [--agent ID] [--json]",
		ShortHelp:  "List an agent's sessions with their model override and pin.",
		LongHelp: `Examples:
  opensoul sessions list
  opensoul sessions list --agent cron --json`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("sessions list takes no arguments (to see one session: opensoul sessions show %s)", args[0])
			}
			agent, ss, err := a.loadSessions(f)
			if err != nil {
				return err
			}
			ids := sortedSessionIDs(ss)
			if *f.asJSON {
				rows := []sessionRow{}
				for _, id := range ids {
					rows = append(rows, rowOf(id, ss.Sessions[id]))
				}
				return writeJSON(a.stdout, map[string]any{"agent": agent, "path": a.st.SessionsPath(agent), "sessions": rows})
			}
			if len(ids) == 0 {
				fmt.Fprintf(a.stdout, "Agent %s has no sessions yet (%s).\n", agent, a.st.SessionsPath(agent))
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SESSION\tMODEL\tPROFILE\tPIN\tUPDATED")
			for _, id := range ids {
				s := ss.Sessions[id]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, orDash(s.ModelOverride), orDash(s.AuthProfileOverride),
					orDash(s.AuthProfileOverrideSource), ago(s.UpdatedAt, now))
			}
			return tw.Flush()
		},
	})
}

func (a *app) sessionsShowCmd() *ffcli.Command {
	fs, f := a.sessionsFlagSet("sessions show")
	return leaf(&ffcli.Command{
		Name:       "show",
		ShortUsage: "opensoul sessions show ID [--agent ID] [--json]",
		ShortHelp:  "Show one session: its model override, its pin and the pinned credential.",
		LongHelp: `Example:
  opensoul sessions show default`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usageErr("sessions show takes one session id (list them with: opensoul sessions list)")
			}
			agent, ss, err := a.loadSessions(f)
			if err != nil {
				return err
			}
			s, err := findSession(agent, ss, args[0])
			if err != nil {
				return err
			}
			return a.showSession(agent, args[0], s, *f.asJSON)
		},
	})
}

func (a *app) showSession(agent, id string, s *store.Session, asJSON bool) error {
	eff, err := a.st.LoadEffective(agent)
	if err != nil {
		return err
	}
	cred, known := eff.Profiles[s.AuthProfileOverride]
	if asJSON {
		out := map[string]any{"agent": agent, "path": a.st.SessionsPath(agent), "session": rowOf(id, s)}
		if s.AuthProfileOverride != "" {
			p := map[string]any{"id": s.AuthProfileOverride, "exists": known}
			if known {
				p["provider"], p["type"], p["label"] = cred.Provider, cred.Type, scrub.Mask(cred.Secret())
			}
			out["profile"] = p
		}
		return writeJSON(a.stdout, out)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Session:\t%s\n", id)
	fmt.Fprintf(tw, "Agent:\t%s (%s)\n", agent, a.st.SessionsPath(agent))
	fmt.Fprintf(tw, "Model override:\t%s\n", orWord(s.ModelOverride, "none (the model the client asks for)"))
	switch {
	case s.AuthProfileOverride == "":
		fmt.Fprintf(tw, "Credential pin:\tnone (chosen by the policy)\n")
	case !known:
		fmt.Fprintf(tw, "Credential pin:\t%s (%s) — no such profile any more; the pin is ignored\n", s.AuthProfileOverride, pinSourceText(s.AuthProfileOverrideSource))
	default:
		fmt.Fprintf(tw, "Credential pin:\t%s (%s) — %s %s %s\n", s.AuthProfileOverride, pinSourceText(s.AuthProfileOverrideSource),
			cred.Provider, cred.Type, scrub.Mask(cred.Secret()))
	}
	fmt.Fprintf(tw, "Created:\t%s\n", stamp(s.CreatedAt, now))
	fmt.Fprintf(tw, "Updated:\t%s\n", stamp(s.UpdatedAt, now))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Reset it with: opensoul sessions reset %s%s\n", id, agentFlagText(agent))
	return nil
}

func (a *app) sessionsResetCmd() *ffcli.Command {
	fs, f := a.sessionsFlagSet("sessions reset")
	all := fs.Bool("all", false, "reset every session of the agent")
	return leaf(&ffcli.Command{
		Name:       "reset",
		ShortUsage: "opensoul sessions reset ID [--agent ID] [--json] | --all",
		ShortHelp:  "Start a session afresh: drop its model override and credential pin.",
		LongHelp: `The same as typing /new in the chat. A running gateway applies it
within a second.

Examples:
  opensoul sessions reset my-chat
  opensoul sessions reset --all --agent cron`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			switch {
			case *all && len(args) > 0:
				return usageErr("give a session id or --all, not both")
			case !*all && len(args) != 1:
				return usageErr("sessions reset takes one session id, or --all (list them with: opensoul sessions list)")
			}
			if err := a.load(); err != nil {
				return err
			}
			agent, err := a.agentID(*f.agent)
			if err != nil {
				return err
			}
			var dropped []sessionRow
			err = a.st.UpdateSessions(agent, func(ss *store.Sessions) error {
				ids := args
				if *all {
					ids = sortedSessionIDs(ss)
				}
				for _, id := range ids {
					s, err := findSession(agent, ss, id)
					if err != nil {
						return err
					}
					dropped = append(dropped, rowOf(id, s))
					ss.Reset(id, time.Now().UnixMilli())
				}
				if len(dropped) == 0 {
					return store.NoChange
				}
				return nil
			})
			if err != nil {
				return err
			}
			if *f.asJSON {
				if dropped == nil {
					dropped = []sessionRow{}
				}
				return writeJSON(a.stdout, map[string]any{"agent": agent, "reset": dropped})
			}
			if len(dropped) == 0 {
				fmt.Fprintf(a.stdout, "Agent %s has no sessions to reset.\n", agent)
			}
			for _, d := range dropped {
				var what []string
				if d.ModelOverride != "" {
					what = append(what, "model override "+d.ModelOverride)
				}
				if d.AuthProfileOverride != "" {
					what = append(what, strings.TrimSuffix(pinSourceText(d.AuthProfileOverrideSource), ", strict")+" on "+d.AuthProfileOverride)
				}
				fmt.Fprintf(a.stdout, "Reset session %s of agent %s", d.ID, agent)
				if len(what) > 0 {
					fmt.Fprintf(a.stdout, ": dropped %s", strings.Join(what, ", "))
				}
				fmt.Fprintln(a.stdout, ".")
			}
			return nil
		},
	})
}

// findSession returns the session id or an error that lists the known ids.
func findSession(agent string, ss *store.Sessions, id string) (*store.Session, error) {
	if s := ss.Sessions[id]; s != nil {
		return s, nil
	}
	known := sortedSessionIDs(ss)
	list := "none yet"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	return nil, fmt.Errorf("agent %s has no session %q (sessions: %s)", agent, id, list)
}

func sortedSessionIDs(ss *store.Sessions) []string {
	ids := make([]string, 0, len(ss.Sessions))
	for id, s := range ss.Sessions {
		if s != nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func pinSourceText(source string) string {
	if source == store.PinUser {
		return "user pin, strict"
	}
	return "automatic pin"
}

func agentFlagText(agent string) string {
	if agent == store.DefaultAgent {
		return ""
	}
	return " --agent " + agent
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ago renders an epoch-ms time as "4m ago".
func ago(ms int64, now time.Time) string {
	if ms == 0 {
		return "-"
	}
	return gateway.Human(now.Sub(time.UnixMilli(ms))) + " ago"
}

// stamp renders an epoch-ms time as RFC 3339 with how long ago it was.
func stamp(ms int64, now time.Time) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339) + " (" + ago(ms, now) + ")"
}
