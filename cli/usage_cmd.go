package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/usage"
)

// usageCmd is `opensoul usage`: what each credential spent, from the
// gateway's usage store, with the headroom providers last reported.
func (a *app) usageCmd() *ffcli.Command {
	fs := a.flagSet("usage")
	agent := fs.String("agent", "", "only this agent's requests (default: every agent's)")
	by := fs.String("by", "profile", "group by profile, model, client, agent, owner or provider")
	since := fs.String("since", "24h", "how far back: a duration such as 90m, 24h or 7d")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "usage",
		ShortUsage: "opensoul usage [--agent ID] [--by profile|model|client|agent|owner|provider] [--since 24h] [--json]",
		ShortHelp:  "Show what each credential spent: requests, tokens, cost and headroom.",
		LongHelp: `The gateway counts every answer a credential served: requests, input,
output and prompt-cache tokens as the provider reported them (streams
included, a stream cut short counts what passed), and their cost at
list prices (usage.prices adds or overrides a model's price; a
subscription login's cost is what the same tokens would cost on a key).
It also keeps the latest rate limits each provider reported. HEADROOM
is the share left of the tightest window (requests, tokens, a
subscription's 5-hour window), with its reset time, across the models
the provider counts separately.

A credential is a profile id in one agent's store: OWNER is that agent
(main for a profile an agent uses of main's; "-" for a key from the
environment or the config), so an agent's own "anthropic:default" and
main's are two rows. --agent keeps that agent's requests, on whatever
credential served them; --by agent groups by whose requests they were,
--by owner by whose credentials served them.

The counts live in <state>/usage.db for usage.retentionDays (35); a
running gateway writes them once a second.

Examples:
  opensoul usage
  opensoul usage --since 7d --by model
  opensoul usage --agent cron --by client --json
  opensoul usage --by owner`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("usage takes no arguments, got %q", args[0])
			}
			d, err := parseDays(*since)
			if err != nil {
				return usageErr("--since: %v", err)
			}
			return a.showUsage(ctx, usage.Query{Since: a.now().Add(-d), Agent: *agent, By: *by}, *since, *asJSON)
		},
	})
}

// usageReport is `opensoul usage --json`.
type usageReport struct {
	Since  time.Time     `json:"since"`
	By     string        `json:"by"`
	Agent  string        `json:"agent,omitempty"`
	Path   string        `json:"path"`
	Rows   []usageRow    `json:"rows"` // by profile, each names its owner
	Total  usage.Row     `json:"total"`
	Limits []limitReport `json:"limits"`
}

// usageRow is a group's usage, with its headroom when grouped by profile.
type usageRow struct {
	usage.Row
	Headroom *headroom `json:"headroom,omitempty"`
}

// headroom is the tightest window a profile's provider last reported.
type headroom = usage.ProfileHeadroom

// limitReport is one stored limits row.
type limitReport struct {
	Provider string `json:"provider"`
	Profile  string `json:"profile"`
	// Agent is whose store holds the credential ("" for a key from the
	// environment or the config).
	Agent   string         `json:"agent,omitempty"`
	Model   string         `json:"model,omitempty"`
	At      time.Time      `json:"at"`
	Status  string         `json:"status,omitempty"`
	ResetAt time.Time      `json:"resetAt,omitzero"`
	Windows []usage.Window `json:"windows"`
}

func (a *app) showUsage(ctx context.Context, q usage.Query, since string, asJSON bool) error {
	if err := a.load(); err != nil {
		return err
	}
	path := usagePath(a.st.Dir)
	q.By = cmp.Or(q.By, "profile")
	rep := usageReport{Since: q.Since.UTC(), By: q.By, Agent: q.Agent, Path: path, Rows: []usageRow{}, Limits: []limitReport{}}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if asJSON {
			return writeJSON(a.stdout, rep)
		}
		fmt.Fprintf(a.stdout, "No usage recorded yet (%s): the gateway records it as it serves requests.\n", path)
		return nil
	}
	st, err := usage.Open(path, a.usageOptions())
	if err != nil {
		return err
	}
	defer st.Close()
	rows, err := st.Totals(ctx, q)
	if err != nil {
		return usageErr("%v", err)
	}
	all, err := st.LatestLimits(ctx)
	if err != nil {
		return err
	}
	limits := all
	if q.Agent != "" {
		// The agent's credentials: its own profiles and the main ones it
		// uses, not another agent's with the same id.
		snap, err := gateway.LoadSnapshot(a.st, q.Agent)
		if err != nil {
			return err
		}
		limits = usage.Owned(limits, func(id string) string { return snap.Owner[id] })
	}
	tight := map[string]map[string]*headroom{} // a row's credential's: by owner and profile
	for _, r := range rows {
		row := usageRow{Row: r}
		if q.By == "profile" {
			if tight[r.Owner] == nil {
				tight[r.Owner] = usage.Tightest(usage.Owned(all, func(string) string { return r.Owner }))
			}
			row.Headroom = tight[r.Owner][r.Key]
		}
		rep.Rows = append(rep.Rows, row)
		rep.Total.Add(r)
	}
	rep.Total.Key = "total"
	for _, l := range limits {
		rep.Limits = append(rep.Limits, limitReport{Provider: l.Provider, Profile: l.Profile, Agent: l.Agent, Model: l.Model, At: l.Time.UTC(),
			Status: l.Status, ResetAt: l.ResetAt, Windows: l.Windows})
	}
	if asJSON {
		return writeJSON(a.stdout, rep)
	}
	return writeUsageTable(a.stdout, rep, since, a.now())
}

func writeUsageTable(w io.Writer, rep usageReport, since string, now time.Time) error {
	scope := "every agent"
	if rep.Agent != "" {
		scope = "agent " + rep.Agent
	}
	if len(rep.Rows) == 0 {
		fmt.Fprintf(w, "No usage in the last %s for %s (%s).\n", since, scope, rep.Path)
		return nil
	}
	fmt.Fprintf(w, "Usage in the last %s, %s, by %s:\n\n", since, scope, rep.By)
	var most int64
	for _, r := range rep.Rows {
		most = max(most, tokens(r.Row))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	byProfile := rep.By == "profile"
	owner := func(s string) string { // the OWNER column, grouped by profile
		if byProfile {
			return s + "\t"
		}
		return ""
	}
	fmt.Fprintln(tw, strings.ToUpper(rep.By)+"\t"+owner("OWNER")+"REQUESTS\tERRORS\tINPUT\tOUTPUT\tCACHE READ\tCACHE WRITE\tCOST\tHEADROOM\tTOKENS")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(r.Key), owner(orDash(r.Owner)), r.Requests, r.Errors,
			count(r.Input), count(r.Output), count(r.CacheRead), count(r.CacheWrite), dollars(r.CostUSD), r.Headroom.Text(now), bar(tokens(r.Row), most))
	}
	t := rep.Total
	fmt.Fprintf(tw, "TOTAL\t%s%d\t%d\t%s\t%s\t%s\t%s\t%s\t\t\n", owner(""), t.Requests, t.Errors, count(t.Input), count(t.Output),
		count(t.CacheRead), count(t.CacheWrite), dollars(t.CostUSD))
	return tw.Flush()
}

func tokens(r usage.Row) int64 { return r.Total() }

// usageOptions open <state>/usage.db for reading (the CLI never records),
// with the owners of a store written before its rows named them.
func (a *app) usageOptions() usage.Options {
	return usage.Options{FlushInterval: -1, Retention: hours(24 * a.cfg.Usage.RetentionDays), Now: a.now,
		Owner: gateway.CredentialOwner(a.st)}
}

// count is a token count in short form: 950, 12.3k, 4.5M.
func count(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}

func dollars(v float64) string {
	if v > 0 && v < 0.01 {
		return "<$0.01"
	}
	return fmt.Sprintf("$%.2f", v)
}

// bar is n's share of most as up to 20 blocks.
func bar(n, most int64) string {
	if most <= 0 || n <= 0 {
		return ""
	}
	return strings.Repeat("█", max(1, int(20*n/most)))
}

// usageFacts are the policy's usage facts (input.profiles[i].usage,
// input.agent.usage) as the gateway would build them from <state>/usage.db,
// so policy explain and models status decide on what was spent: nil (the
// facts are null, as in a gateway without a store) when usage is off or
// the store cannot be read (one stderr line); all zero when nothing was
// recorded yet.
func (a *app) usageFacts() *usage.Facts {
	path := usagePath(a.st.Dir)
	if !a.cfg.Usage.Enabled {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return &usage.Facts{}
	}
	st, err := usage.Open(path, a.usageOptions())
	if err != nil {
		fmt.Fprintf(a.stderr, "opensoul: usage facts not read: %v\n", err)
		return nil
	}
	defer st.Close()
	return st.Facts()
}
