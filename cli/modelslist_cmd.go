package cli

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
)

// modelInfo is one configured model in `models list`.
type modelInfo struct {
	Ref           string `json:"ref"`
	Provider      string `json:"provider"`
	Alias         string `json:"alias,omitempty"`
	Role          string `json:"role"` // primary | fallback | allowed
	HasCredential bool   `json:"hasCredential"`
	Source        string `json:"source"`
}

// configuredModels lists the primary, fallbacks and allowed models, each
// with the credential the gateway's policy would serve it with.
func (a *app) configuredModels(ctx context.Context, snap *gateway.Snapshot) ([]modelInfo, error) {
	now := time.Now()
	r, err := a.resolver(ctx, now)
	if err != nil {
		return nil, err
	}
	var out []modelInfo
	seen := map[string]bool{}
	add := func(ref, role string) {
		if seen[ref] || err != nil {
			return
		}
		seen[ref] = true
		p, m, _ := SplitModelRef(ref)
		var res *gateway.Resolution
		if res, err = r.Resolve(ctx, snap, gateway.Query{Agent: snap.Agent, Provider: p, Model: m}, now); err != nil {
			return
		}
		eff := a.effective(&gateway.ModelResolution{Ref: ref, Resolution: res}, snap)
		out = append(out, modelInfo{Ref: ref, Provider: p, Alias: a.cfg.Agents.Defaults.Models[ref].Alias, Role: role, HasCredential: eff.Source != "missing", Source: eff.Detail})
	}
	add(a.cfg.Agents.Defaults.Model.Primary, "primary")
	for _, f := range a.cfg.Agents.Defaults.Model.Fallbacks {
		add(f, "fallback")
	}
	refs := make([]string, 0, len(a.cfg.Agents.Defaults.Models))
	for r := range a.cfg.Agents.Defaults.Models {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		add(r, "allowed")
	}
	return out, err
}

func (a *app) modelsListCmd() *ffcli.Command {
	fs := a.flagSet("models list")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "list",
		ShortUsage: "opensoul models list [--agent ID] [--json]",
		ShortHelp:  "List configured models, their aliases, and whether each has a credential.",
		LongHelp:   "Example:\n  opensoul models list",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			ag, snap, err := a.agentSnapshot(*agent)
			if err != nil {
				return err
			}
			models, err := a.configuredModels(ctx, snap)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(a.stdout, map[string]any{"agent": ag, "models": models})
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL\tALIAS\tROLE\tCREDENTIAL")
			for _, m := range models {
				cred := "yes: " + m.Source
				if !m.HasCredential {
					cred = "NO — opensoul models auth paste-token --provider " + m.Provider
				}
				alias := m.Alias
				if alias == "" {
					alias = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Ref, alias, m.Role, cred)
			}
			return tw.Flush()
		},
	})
}
