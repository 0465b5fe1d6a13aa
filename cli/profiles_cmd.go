package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/doctor"
	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
)

func (a *app) orderCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "order",
		ShortUsage: "opensoul models auth order <get|set|clear> --provider P [--agent ID]",
		ShortHelp:  "Show or set the explicit order in which an agent uses a provider's profiles.",
		LongHelp: `An explicit order is kept as given, and profiles not in it are not used.
Without one, profiles rotate: OAuth before token before API key, least
recently used first. The order is stored in the agent's auth-profiles.json.

Examples:
  opensoul models auth order get --provider anthropic
  opensoul models auth order set --provider anthropic anthropic:work anthropic:default
  opensoul models auth order clear --provider anthropic --agent cron`,
		FlagSet:     a.flagSet("order"),
		Subcommands: []*ffcli.Command{a.orderGetCmd(), a.orderSetCmd(), a.orderClearCmd()},
	})
}

type orderFlags struct {
	provider, agent *string
	asJSON          *bool
}

func (a *app) orderFlagSet(name string) (*flag.FlagSet, orderFlags) {
	fs := a.flagSet(name)
	f := orderFlags{
		provider: fs.String("provider", "", "provider (required)"),
		agent:    fs.String("agent", "", "agent id (default: agents.default)"),
		asJSON:   fs.Bool("json", false, "print JSON"),
	}
	return fs, f
}

// prepare loads config and validates the shared order flags.
func (a *app) prepareOrder(f orderFlags) (string, error) {
	if err := validProvider(*f.provider); err != nil {
		return "", err
	}
	if err := a.load(); err != nil {
		return "", err
	}
	return a.agentID(*f.agent)
}

func (a *app) printOrder(f orderFlags, agent string, order []string) error {
	if *f.asJSON {
		return writeJSON(a.stdout, map[string]any{"agent": agent, "provider": *f.provider, "order": nonNilStrings(order)})
	}
	if len(order) == 0 {
		fmt.Fprintf(a.stdout, "%s/%s: no explicit order (round-robin: oauth, token, api_key; least recently used first)\n", agent, *f.provider)
		return nil
	}
	fmt.Fprintf(a.stdout, "%s/%s: %s\n", agent, *f.provider, strings.Join(order, " "))
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *app) orderGetCmd() *ffcli.Command {
	fs, f := a.orderFlagSet("order get")
	return leaf(&ffcli.Command{
		Name:       "get",
		ShortUsage: "opensoul models auth order get --provider P [--agent ID] [--json]",
		ShortHelp:  "Print the order in effect for a provider, where it comes from, and what serves now.",
		LongHelp: `Prints the order the gateway starts from and its source: the agent
store's explicit order (order set), else config auth.order, else the
built-in round-robin (oauth, token, api_key; least recently used first).
Then, as the gateway's policy decides now (your Rego, cooldowns, disables),
the profile that would serve the provider's model in use.

Example:
  opensoul models auth order get --provider anthropic --json`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			agent, err := a.prepareOrder(f)
			if err != nil {
				return err
			}
			snap, err := gateway.LoadSnapshot(a.st, agent)
			if err != nil {
				return err
			}
			return a.printOrderInForce(ctx, f, snap)
		},
	})
}

// orderReport is the JSON of `order get`.
type orderReport struct {
	Agent       string   `json:"agent"`
	Provider    string   `json:"provider"`
	Order       []string `json:"order"`  // the order in effect ([] for built-in)
	Source      string   `json:"source"` // agent store | config auth.order | built-in
	File        string   `json:"file,omitempty"`
	StoreOrder  []string `json:"storeOrder"`
	ConfigOrder []string `json:"configOrder"`
	Model       string   `json:"model"`   // the provider/model ref Serving is for
	Serving     string   `json:"serving"` // the credential tried first, "" when none can
}

// orderFile is the store file whose order an agent uses: its own, else
// main's, which every agent inherits.
func (a *app) orderFile(agent, provider string) string {
	if own, err := a.st.LoadProfiles(agent); err == nil && len(own.Order[provider]) > 0 {
		return a.st.ProfilesPath(agent)
	}
	return a.st.ProfilesPath(store.DefaultAgent)
}

func (a *app) printOrderInForce(ctx context.Context, f orderFlags, snap *gateway.Snapshot) error {
	p := *f.provider
	order, source := gateway.OrderInForce(snap, a.cfg.Auth.Order, p)
	rep := orderReport{Agent: snap.Agent, Provider: p, Order: order, Source: source,
		StoreOrder: nonNilStrings(snap.Order[p]), ConfigOrder: nonNilStrings(a.cfg.Auth.Order[p])}
	switch source {
	case gateway.OrderStore:
		rep.File = a.orderFile(snap.Agent, p)
	case gateway.OrderConfig:
		rep.File = a.cfgFile
	}
	h, err := a.health(ctx, snap, time.Now())
	if err != nil {
		return err
	}
	if mr := h.Provider(p); mr != nil {
		rep.Model, rep.Serving = mr.Ref, mr.Serving
	}
	if *f.asJSON {
		return writeJSON(a.stdout, rep)
	}
	if source == gateway.OrderBuiltin {
		fmt.Fprintf(a.stdout, "%s/%s: no explicit order (built-in round-robin: oauth, token, api_key; least recently used first)\n", snap.Agent, p)
	} else {
		fmt.Fprintf(a.stdout, "%s/%s: %s\n  source: %s (%s)\n", snap.Agent, p, strings.Join(order, " "), source, rep.File)
		if source == gateway.OrderStore && len(rep.ConfigOrder) > 0 {
			fmt.Fprintf(a.stdout, "  config auth.order (%s) is not used while the store has one\n", strings.Join(rep.ConfigOrder, " "))
		}
	}
	if rep.Model != "" {
		fmt.Fprintf(a.stdout, "  serves %s now: %s\n", rep.Model, cmpOrWord(rep.Serving, "nothing (see: opensoul models status)"))
	}
	return nil
}

func (a *app) orderSetCmd() *ffcli.Command {
	fs, f := a.orderFlagSet("order set")
	return leaf(&ffcli.Command{
		Name:       "set",
		ShortUsage: "opensoul models auth order set --provider P [--agent ID] ID [ID…]",
		ShortHelp:  "Set the agent's explicit order for a provider.",
		LongHelp:   "Example:\n  opensoul models auth order set --provider anthropic anthropic:work anthropic:default",
		FlagSet:    fs,
		Exec: func(ctx context.Context, ids []string) error {
			agent, err := a.prepareOrder(f)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return usageErr("order set needs at least one profile id (to remove the order use: order clear --provider %s)", *f.provider)
			}
			eff, err := a.st.LoadEffective(agent)
			if err != nil {
				return err
			}
			seen := map[string]bool{}
			for _, id := range ids {
				c, ok := eff.Profiles[id]
				switch {
				case !ok:
					known := eff.ProfileIDs(*f.provider)
					return fmt.Errorf("no profile %q for agent %s (known %s profiles: %s)", id, agent, *f.provider, listOrNone(known))
				case c.Provider != *f.provider:
					return fmt.Errorf("profile %q belongs to provider %s, not %s", id, c.Provider, *f.provider)
				case seen[id]:
					return fmt.Errorf("profile %q is listed twice", id)
				}
				seen[id] = true
			}
			if err := a.st.UpdateProfiles(agent, func(p *store.Profiles) error {
				p.Order[*f.provider] = ids
				return nil
			}); err != nil {
				return err
			}
			return a.printOrder(f, agent, ids)
		},
	})
}

func (a *app) orderClearCmd() *ffcli.Command {
	fs, f := a.orderFlagSet("order clear")
	return leaf(&ffcli.Command{
		Name:       "clear",
		ShortUsage: "opensoul models auth order clear --provider P [--agent ID]",
		ShortHelp:  "Remove the agent's explicit order for a provider.",
		LongHelp:   "Example:\n  opensoul models auth order clear --provider anthropic",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			agent, err := a.prepareOrder(f)
			if err != nil {
				return err
			}
			if err := a.st.UpdateProfiles(agent, func(p *store.Profiles) error {
				if _, ok := p.Order[*f.provider]; !ok {
					return store.NoChange
				}
				delete(p.Order, *f.provider)
				return nil
			}); err != nil {
				return err
			}
			return a.printOrder(f, agent, nil)
		},
	})
}

func listOrNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

type profileListItem struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Type     string `json:"type"`
	Label    string `json:"label"`
	Email    string `json:"email,omitempty"`
	Agent    string `json:"agent"`
	Status   string `json:"status"`
}

func (a *app) authListCmd() *ffcli.Command {
	fs := a.flagSet("auth list")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "list",
		ShortUsage: "opensoul models auth list [--agent ID] [--json]",
		ShortHelp:  "List the agent's profiles (secrets masked), including those inherited from main.",
		LongHelp:   "Example:\n  opensoul models auth list --json",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			ag, snap, err := a.agentSnapshot(*agent)
			if err != nil {
				return err
			}
			ids := make([]string, 0, len(snap.Profiles))
			for id := range snap.Profiles {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			items := []profileListItem{}
			for _, id := range ids {
				c := snap.Profiles[id]
				items = append(items, profileListItem{ID: id, Provider: c.Provider, Type: c.Type, Label: scrub.Mask(c.Secret()), Email: c.Email, Agent: snap.Owner[id], Status: gateway.ProfileStatus(c, time.Now())})
			}
			if *asJSON {
				return writeJSON(a.stdout, map[string]any{"agent": ag, "storePath": a.st.ProfilesPath(ag), "profiles": items})
			}
			if len(items) == 0 {
				fmt.Fprintf(a.stdout, "No profiles for agent %s. Add one with: opensoul models auth paste-token --provider anthropic\n", ag)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATUS\tLABEL\tSTORE")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.ID, it.Type, it.Status, it.Label, it.Agent)
			}
			return tw.Flush()
		},
	})
}

func (a *app) authRemoveCmd() *ffcli.Command {
	fs := a.flagSet("auth remove")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	return leaf(&ffcli.Command{
		Name:       "remove",
		ShortUsage: "opensoul models auth remove [--agent ID] ID",
		ShortHelp:  "Delete a profile and its secret from the agent's store.",
		LongHelp:   "Example:\n  opensoul models auth remove anthropic:manual",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usageErr("remove takes exactly one profile id")
			}
			id := args[0]
			if err := a.load(); err != nil {
				return err
			}
			ag, err := a.agentID(*agent)
			if err != nil {
				return err
			}
			found := false
			if err := a.st.UpdateProfiles(ag, func(p *store.Profiles) error {
				if _, ok := p.Profiles[id]; !ok {
					return store.NoChange
				}
				found = true
				delete(p.Profiles, id)
				for prov, ids := range p.Order {
					p.Order[prov] = slices.DeleteFunc(ids, func(s string) bool { return s == id })
					if len(p.Order[prov]) == 0 {
						delete(p.Order, prov)
					}
				}
				return nil
			}); err != nil {
				return err
			}
			if !found {
				eff, err := a.st.LoadEffective(ag)
				if err == nil && eff.Owner[id] != "" && eff.Owner[id] != ag {
					return fmt.Errorf("%s is inherited from agent %s; remove it there: opensoul models auth remove --agent %s %s", id, eff.Owner[id], eff.Owner[id], id)
				}
				return fmt.Errorf("no profile %q in %s", id, a.st.ProfilesPath(ag))
			}
			if err := removeProfileMeta(a.cfgFile, id); err != nil {
				a.warnf("removed the profile, but could not update %s: %v", a.cfgFile, err)
			}
			fmt.Fprintf(a.stdout, "Removed %s from %s\n", id, a.st.ProfilesPath(ag))
			return nil
		},
	})
}

func (a *app) clearCooldownCmd() *ffcli.Command {
	fs := a.flagSet("clear-cooldown")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	provider := fs.String("provider", "", "clear every profile of this provider")
	return leaf(&ffcli.Command{
		Name:       "clear-cooldown",
		ShortUsage: "opensoul models auth clear-cooldown [--agent ID] [--provider P] [ID…]",
		ShortHelp:  "Make cooling or disabled profiles usable again now.",
		LongHelp: `Clears cooldowns, disables, error counts and a client scope (a token the
provider accepts from one client only, such as a Claude setup-token kept for
Claude Code: it is offered to every client again until the provider refuses
it once more). A running gateway picks the change up without a restart.

Examples:
  opensoul models auth clear-cooldown --provider anthropic
  opensoul models auth clear-cooldown anthropic:work`,
		FlagSet: fs,
		Exec: func(ctx context.Context, ids []string) error {
			if len(ids) == 0 && *provider == "" {
				return usageErr("name profile ids or --provider")
			}
			if err := a.load(); err != nil {
				return err
			}
			ag, err := a.agentID(*agent)
			if err != nil {
				return err
			}
			eff, err := a.st.LoadEffective(ag)
			if err != nil {
				return err
			}
			if *provider != "" {
				ids = append(ids, eff.ProfileIDs(*provider)...)
			}
			byOwner := map[string][]string{}
			for _, id := range ids {
				owner, ok := eff.Owner[id]
				if !ok {
					return fmt.Errorf("no profile %q for agent %s", id, ag)
				}
				byOwner[owner] = append(byOwner[owner], id)
			}
			var cleared []string
			for owner, ids := range byOwner {
				if err := a.st.UpdateState(owner, func(st *store.State) error {
					for _, id := range ids {
						if u := st.UsageStats[id]; u != nil && doctor.HasSomethingToClear(*u) {
							st.UsageStats[id] = &store.UsageStats{LastUsed: u.LastUsed}
							cleared = append(cleared, id)
						}
					}
					if len(cleared) == 0 {
						return store.NoChange
					}
					return nil
				}); err != nil {
					return err
				}
			}
			if len(cleared) == 0 {
				fmt.Fprintf(a.stdout, "Nothing to clear: none of %d profile(s) was cooling, disabled or counting errors\n", len(ids))
				return nil
			}
			slices.Sort(cleared)
			fmt.Fprintf(a.stdout, "Cleared %s", strings.Join(cleared, ", "))
			if n := len(ids) - len(cleared); n > 0 {
				fmt.Fprintf(a.stdout, " (%d other profile(s) had nothing to clear)", n)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	})
}
