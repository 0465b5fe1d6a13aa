package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opensoul/opensoul/gateway"
)

// How `models status` reads in a terminal: the report built by
// buildStatus, rendered as text.

func (rep *statusReport) writeText(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "Agent:         %s\n", rep.Agent)
	fmt.Fprintf(w, "Auth store:    %s\n", rep.StorePath)
	fmt.Fprintf(w, "Default model: %s", rep.DefaultModel)
	if len(rep.Fallbacks) > 0 {
		fmt.Fprintf(w, " (fallbacks: %s)", strings.Join(rep.Fallbacks, ", "))
	}
	fmt.Fprintln(w)
	if len(rep.Providers) == 0 {
		fmt.Fprintln(w, "\nNo credentials found. Add one with:\n  opensoul models auth paste-token --provider anthropic")
	}
	for _, ps := range rep.Providers {
		fmt.Fprintf(w, "\n%s — %s\n", ps.Provider, ps.Effective.Detail)
		if len(ps.Profiles) > 0 {
			fmt.Fprintf(w, "  roles for %s, as the gateway's policy decides now:\n", ps.Model)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "  PROFILE\tTYPE\tSTATUS\tROLE\tSTATE\tHEADROOM\tLABEL\tWHY\n")
			for _, r := range ps.Profiles {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Type, r.Status, r.Role, profileNote(r, now), r.Headroom.Text(now), r.Label, r.Why)
			}
			tw.Flush()
		}
		rep.writeFallbacks(w, ps.Model)
		rep.writeClientScopes(w, ps.Model)
		rep.writeOtherModels(w, ps.Provider, ps.Model, now)
	}
	if len(rep.MissingProvidersInUse) > 0 {
		fmt.Fprintf(w, "\nMissing credentials for providers in use: %s\n", strings.Join(rep.MissingProvidersInUse, ", "))
		for _, p := range rep.MissingProvidersInUse {
			fmt.Fprintf(w, "  fix: opensoul models auth paste-token --provider %s\n", p)
		}
	}
	if rep.Check == nil && len(rep.Problems) > 0 {
		fmt.Fprintln(w, "\nNeeds attention:")
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if rep.Check != nil && len(rep.Check.Problems) > 0 {
		fmt.Fprintln(w, "\nCheck:")
		for _, p := range rep.Check.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

// writeFallbacks lists the environment and config credentials with the
// provider module's verdict on each (an invalid one is never used).
func (rep *statusReport) writeFallbacks(w io.Writer, ref string) {
	for _, m := range rep.Models {
		if m.Ref != ref {
			continue
		}
		for _, f := range m.Fallbacks {
			line := fmt.Sprintf("  %s: %s", f.ID, f.Status)
			if f.EnvSource != "" {
				line = fmt.Sprintf("  %s (%s): %s", f.ID, f.EnvSource, f.Status)
			}
			if f.Reason != "" {
				line += " — " + f.Reason
			}
			switch {
			case f.Status == gateway.StatusInvalid || f.Status == gateway.StatusExpired:
				line += " (not used)"
			case f.ID == m.Serving:
				line += " (serves: no profile can)"
			default:
				line += " (used when no profile can serve)"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// writeClientScopes says what serves the requests of each client a
// profile is scoped to (the table above is for any other client).
func (rep *statusReport) writeClientScopes(w io.Writer, ref string) {
	for _, m := range rep.Models {
		if m.Ref != ref {
			continue
		}
		for _, client := range slices.Sorted(maps.Keys(m.ForClients)) {
			fmt.Fprintf(w, "  %s requests: %s (a profile is scoped to %s)\n", client, cmpOrWord(m.ForClients[client], "nothing can serve"), client)
		}
	}
}

// writeOtherModels shows the decision for the provider's other models
// (those with a recorded cooldown) when it differs from the shown one.
func (rep *statusReport) writeOtherModels(w io.Writer, provider, shown string, now time.Time) {
	for _, m := range rep.Models {
		if m.Provider != provider || m.Ref == shown {
			continue
		}
		serving := m.Serving
		if serving == "" {
			serving = "nothing can serve"
		}
		var cooling []string
		for _, pr := range m.Profiles {
			if pr.Role == gateway.RoleCooling {
				cooling = append(cooling, pr.ID+" "+untilText(pr.Until, now))
			}
		}
		line := fmt.Sprintf("  for %s: %s", m.Ref, serving)
		if len(cooling) > 0 {
			line += " (cooling: " + strings.Join(cooling, ", ") + ")"
		}
		fmt.Fprintln(w, line)
	}
}

func untilText(until int64, now time.Time) string {
	if until >= gateway.DisabledUntilChanged {
		return "until the credential changes"
	}
	return gateway.Human(time.Duration(until-now.UnixMilli())*time.Millisecond) + " left"
}

func profileNote(r profileStatus, now time.Time) string {
	var notes []string
	nowMs := now.UnixMilli()
	if r.RemainingMs != nil {
		if r.Refreshable {
			notes = append(notes, "refreshed before use")
		} else if *r.RemainingMs > 0 {
			notes = append(notes, "expires in "+gateway.Human(time.Duration(*r.RemainingMs)*time.Millisecond))
		} else {
			notes = append(notes, "expired "+gateway.Human(time.Duration(-*r.RemainingMs)*time.Millisecond)+" ago")
		}
	}
	switch {
	case r.DisabledUntil >= gateway.DisabledUntilChanged:
		notes = append(notes, fmt.Sprintf("disabled: %s (until the credential is replaced or the cooldown cleared)", r.DisabledReason))
	case r.DisabledUntil > nowMs:
		notes = append(notes, fmt.Sprintf("disabled: %s (%s left)", r.DisabledReason, gateway.Human(time.Duration(r.DisabledUntil-nowMs)*time.Millisecond)))
	}
	if r.Scope != "" {
		notes = append(notes, "only for "+r.Scope+" requests (the provider accepts it from "+r.Scope+" only)")
	}
	if r.CooldownUntil > nowMs {
		cd := "cooldown " + gateway.Human(time.Duration(r.CooldownUntil-nowMs)*time.Millisecond)
		if r.CooldownModel != "" {
			cd += " on " + r.CooldownModel
		}
		notes = append(notes, cd)
	}
	if r.Reason != "" {
		notes = append(notes, r.Reason)
	}
	if len(notes) == 0 {
		return "-"
	}
	return strings.Join(notes, ", ")
}

func cmpOrWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
}
