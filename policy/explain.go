package policy

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteExplain writes, for people, the facts a decision was made from and
// the decision itself with a reason for every profile: candidates in the
// order they will be tried, then cooling profiles, then the rest. The
// input carries no secrets, so nothing needs masking.
func WriteExplain(w io.Writer, in *Input, d Decision) error {
	in.ProfileFacts()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	p("Facts\n")
	p("  now\t%s\n", fmtMillis(in.Now))
	p("  agent\t%s\n", in.Agent.ID+attrsText(in.Agent.Attrs))
	request := fmt.Sprintf("provider %s, model %s", orNone(in.Request.Provider), orNone(in.Request.Model))
	if c := clientText(in.Request.Client); c != "" {
		request += ", client " + c
	}
	p("  request\t%s\n", request)
	session := orNone(in.Session.ID)
	if in.Session.New {
		session += " (new)"
	}
	if pin := in.Session.Pin; pin != nil {
		session += fmt.Sprintf(", pinned to %s (%s)", pin.Profile, pin.Source)
	}
	if c := clientText(in.Session.Client); c != "" && in.Session.ID != "" {
		session += ", opened by " + c
	}
	if in.Session.Started != 0 {
		session += ", started " + fmtMillis(in.Session.Started)
	}
	if in.Session.Requests != 0 {
		session += fmt.Sprintf(", requests %d+", in.Session.Requests)
	}
	p("  session\t%s\n", session)
	p("  order\tagent store: %s; config: %s\n", list(in.Order.Store), list(in.Order.Config))
	env := make([]string, len(in.Env))
	for i, e := range in.Env {
		env[i] = fmt.Sprintf("%s (%s)", e.Var, e.Type)
	}
	p("  environment\t%s\n", list(env))
	if len(in.Profiles) == 0 {
		p("  profiles\tnone for this provider\n")
	} else {
		// The scope column shows only when a profile is scoped to a client.
		scoped := slices.ContainsFunc(in.Profiles, func(f ProfileFacts) bool { return f.Scope != nil && *f.Scope != "" })
		head := "\n  PROFILE\tTYPE\tSTATUS\tKIND\tEXPIRES\tLAST USED\tCOOLDOWN UNTIL\tDISABLED UNTIL\tERRORS"
		if scoped {
			head += "\tSCOPE"
		}
		p("%s\n", head)
		for _, f := range in.Profiles {
			expires := "-"
			if f.ExpiresAt != nil {
				expires = fmtMillis(*f.ExpiresAt)
			}
			cooldown := fmtMillis(f.CooldownUntil)
			if f.CooldownModel != nil && *f.CooldownModel != "" && f.CooldownUntil != 0 {
				cooldown += " (" + *f.CooldownModel + ")"
			}
			disabled := fmtMillis(f.DisabledUntil)
			if f.DisabledReason != nil && *f.DisabledReason != "" && f.DisabledUntil != 0 {
				disabled += " (" + *f.DisabledReason + ")"
			}
			row := fmt.Sprintf("  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d", f.ID, f.Type, f.Status, orNone(f.Kind), expires,
				fmtMillis(f.LastUsed), cooldown, disabled, f.ErrorCount)
			if scoped {
				scope := "-"
				if f.Scope != nil && *f.Scope != "" {
					scope = "only " + *f.Scope
				}
				row += "\t" + scope
			}
			p("%s\n", row)
		}
	}

	p("\nDecision\n")
	if d.Strict {
		p("  strict: yes (user pin: no failover to another profile)\n")
	} else {
		p("  strict: no (fails over down the candidates)\n")
	}
	if len(d.Candidates) == 0 {
		p("  candidates: none\n")
	} else {
		p("  candidates, in the order they are tried:\n")
		for i, id := range d.Candidates {
			p("    %d. %s\t%s\n", i+1, id, d.Reasons[id])
		}
		if n := len(d.Equal()); n > 1 {
			p("  the first %d are of equal rank: the gateway serves the least recently used of them first\n", n)
		}
	}
	if len(d.Cooling) > 0 {
		p("  cooling, soonest recovery first:\n")
		for _, id := range d.Cooling {
			p("    %s\t%s\n", id, d.Reasons[id])
		}
	}
	var rest []string
	for id := range d.Reasons {
		if !slices.Contains(d.Candidates, id) && !slices.Contains(d.Cooling, id) {
			rest = append(rest, id)
		}
	}
	if len(rest) > 0 {
		slices.Sort(rest)
		p("  not used:\n")
		for _, id := range rest {
			p("    %s\t%s\n", id, d.Reasons[id])
		}
	}
	return tw.Flush()
}

// attrsText renders agent attributes as " (k=v, …)" in key order.
func attrsText(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return " (" + strings.Join(kv, ", ") + ")"
}

func clientText(c ClientFacts) string {
	if c.Name == "" {
		return ""
	}
	if c.Version == "" {
		return c.Name
	}
	return c.Name + "/" + c.Version
}

func fmtMillis(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(ss []string) string {
	if len(ss) == 0 {
		return "-"
	}
	return strings.Join(ss, ", ")
}
