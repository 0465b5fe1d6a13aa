package chat

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
	gwusage "github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// currentModel is the model this session's requests through the route
// go to: the session override when it is for the route's provider, else
// what the client asks for. override reports which.
func (c *call) currentModel() (full string, override bool) {
	if o := c.session.ModelOverride; o != "" {
		if p, _, _ := strings.Cut(o, "/"); p == c.req.Provider {
			return o, true
		}
	}
	if c.req.Model != "" {
		return c.req.Provider + "/" + c.req.Model, false
	}
	return "", false
}

// modelFor is the model a provider's requests would ask for (for the
// policy's view and model-scoped cooldowns).
func (c *call) modelFor(provider string) string {
	if provider == c.req.Provider {
		full, _ := c.currentModel()
		_, m, _ := strings.Cut(full, "/")
		return m
	}
	if p, m, ok := strings.Cut(c.cfg.DefaultModel, "/"); ok && p == provider {
		return m
	}
	return ""
}

// pinFor is the session's pin when it applies to provider.
func (c *call) pinFor(provider string) *policy.Pin {
	id := c.session.AuthProfileOverride
	if id == "" {
		return nil
	}
	if cr, ok := c.snap.Profiles[id]; !ok || cr.Provider != provider {
		return nil
	}
	src := c.session.AuthProfileOverrideSource
	if src == "" {
		src = store.PinAuto
	}
	return &policy.Pin{Profile: id, Source: src}
}

// next asks the policy which profile of provider the session's next
// request would use first. dec is nil when no policy is wired or it failed.
func (c *call) next(provider string) (id string, dec *policy.Decision) {
	if c.h.selector == nil && c.h.resolve == nil {
		return "", nil
	}
	pin := c.pinFor(provider)
	res, err := c.h.resolver(c.ctx, c.cfg, c.now).Resolve(c.ctx, c.snap, gateway.Query{
		Agent: c.req.Agent, Session: c.req.Session, SessionNew: !c.known, Pin: pin,
		Provider: provider, Model: c.modelFor(provider), API: c.req.API, Stream: c.req.Stream,
		Client: c.req.Client,
	}, c.now)
	if err != nil {
		c.h.log.Warn("chat: policy failed", "agent", c.req.Agent, "provider", provider, "err", err)
		return "", nil
	}
	if len(res.Candidates) > 0 {
		return res.Candidates[0], &res.Decision
	}
	return "", &res.Decision
}

// fallback is the environment or config credential used when no profile
// can serve (DESIGN §3): where it comes from and its masked value.
type fallback struct{ name, masked string }

func (f fallback) String() string { return strings.TrimSpace(f.name + " " + f.masked) }

// envFallback returns the provider's fallback credential; name is "" when
// there is none.
//
// It is the resolver's (gateway.Resolver.Fallback): a credential the
// provider module rejects is skipped, as the gateway skips it.
func (c *call) envFallback(provider string) fallback {
	id, _, ok, _ := c.h.resolver(c.ctx, c.cfg, c.now).Fallback(provider, c.now)
	if !ok {
		return fallback{}
	}
	if name, isEnv := strings.CutPrefix(id, "env:"); isEnv {
		v := c.h.env()[name]
		label := "env " + v.Name
		if v.Source != "" {
			label += " (" + v.Source + ")"
		}
		return fallback{label, scrub.Mask(v.Value)}
	}
	return fallback{"config providers." + provider + ".apiKey", "(set)"}
}

func (c *call) envVar(provider string) (gateway.EnvVar, bool) {
	_, v, ok := c.h.env().Credential(provider)
	return v, ok
}

// marks are a profile's state words: lastGood, cooldown 4m, expires 3h,
// expired, disabled: billing (5h), not used: <why>.
func (c *call) marks(id, model string, dec *policy.Decision) []string {
	cr := c.snap.Profiles[id]
	st := c.snap.Stats.Get(id)
	ms := c.now.UnixMilli()
	var out []string
	if c.snap.LastGood[cr.Provider] == id {
		out = append(out, "lastGood")
	}
	if c.session.AuthProfileOverride == id {
		if c.session.AuthProfileOverrideSource == store.PinUser {
			out = append(out, "pinned by you")
		} else {
			out = append(out, "auto pin")
		}
	}
	if st.CooldownUntil > ms && (st.CooldownModel == "" || model == "" || st.CooldownModel == model) {
		w := "cooldown " + gateway.Human(time.Duration(st.CooldownUntil-ms)*time.Millisecond)
		if st.CooldownModel != "" {
			w += " on " + st.CooldownModel
		}
		out = append(out, w)
	}
	if st.Scope != "" {
		out = append(out, "only for "+st.Scope+" requests")
	}
	if st.DisabledUntil > ms {
		w := "disabled: " + orWord(st.DisabledReason, "unknown")
		if st.DisabledUntil >= gateway.DisabledUntilChanged {
			w += " (until the credential changes)"
		} else {
			w += " (" + gateway.Human(time.Duration(st.DisabledUntil-ms)*time.Millisecond) + ")"
		}
		out = append(out, w)
	}
	switch gateway.ProfileStatus(cr, c.now) {
	case gateway.StatusMissing:
		out = append(out, "no secret")
	case gateway.StatusExpired:
		w := "expired"
		if cr.RefreshError != "" { // the provider's answer and the fixing command
			w += ": " + cr.RefreshError
		}
		out = append(out, w)
	default:
		if cr.Expires > ms {
			out = append(out, "expires "+gateway.Human(time.Duration(cr.Expires-ms)*time.Millisecond))
		}
	}
	if dec != nil && len(out) == len(unexplained(out)) && !slices.Contains(dec.Candidates, id) && !slices.Contains(dec.Cooling, id) {
		why := strings.TrimPrefix(orWord(dec.Reasons[id], "not in the explicit order"), "not used: ")
		out = append(out, "not used: "+why)
	}
	return out
}

// unexplained drops the marks that already say why a profile cannot serve.
func unexplained(marks []string) []string {
	var out []string
	for _, m := range marks {
		if strings.HasPrefix(m, "cooldown") || strings.HasPrefix(m, "disabled") || strings.HasPrefix(m, "expired") || m == "no secret" {
			continue
		}
		out = append(out, m)
	}
	return out
}

// trimLines drops the padding tabwriter leaves after a line's last cell.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// credentialLine says how the session's next request through the route
// gets its credential.
func (c *call) credentialLine() string {
	p := c.req.Provider
	if pin := c.pinFor(p); pin != nil {
		cr := c.snap.Profiles[pin.Profile]
		if pin.Source == store.PinUser {
			return fmt.Sprintf("%s (%s), pinned by you: strict, never rotated", pin.Profile, label(cr))
		}
		return fmt.Sprintf("%s (%s), kept while it works (the first that succeeded in this session)", pin.Profile, label(cr))
	}
	if id, _ := c.next(p); id != "" {
		return fmt.Sprintf("%s (%s) next, chosen by the policy", id, label(c.snap.Profiles[id]))
	}
	if fb := c.envFallback(p); fb.name != "" {
		return fb.String() + ", as no profile can serve"
	}
	return fmt.Sprintf("none; add one with `opensoul models auth paste-token --provider %s%s`", p, c.agentFlag())
}

func (c *call) modelLine() string {
	full, override := c.currentModel()
	var b strings.Builder
	name := full
	if a := c.cfg.Models[full]; a != "" {
		name += " (" + a + ")"
	}
	switch {
	case override:
		fmt.Fprintf(&b, "%s, session override", name)
	case full != "":
		fmt.Fprintf(&b, "%s, as your client asks (no override)", name)
	default:
		b.WriteString("as your client asks (no override)")
	}
	if o := c.session.ModelOverride; o != "" && !override {
		fmt.Fprintf(&b, "; the session's override %s applies through /%s only", o, strings.SplitN(o, "/", 2)[0])
	}
	return b.String()
}

// renderCurrent answers /model: the session's model and credential, the
// models to pick from, and how to switch.
func (c *call) renderCurrent() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Session %q (agent %s) via /%s\n", c.req.Session, c.req.Agent, c.req.Provider)
	fmt.Fprintf(&b, "Model: %s\n", c.modelLine())
	fmt.Fprintf(&b, "Credential: %s\n\n", c.credentialLine())
	if ms := c.modelsOf(c.req.Provider); len(ms) > 0 {
		fmt.Fprintf(&b, "Models here: %s\n", strings.Join(ms, ", "))
	} else if len(c.cfg.Models) == 0 {
		fmt.Fprintf(&b, "Models here: any %s/<model>\n", c.req.Provider)
	}
	fmt.Fprintf(&b, "Switch: /model <alias|provider/model>, for example /model %s\n", c.exampleRef())
	fmt.Fprintf(&b, "Pin a credential: /model %s@<profile> (%s)\n", c.exampleRef(), c.profileList(c.req.Provider))
	b.WriteString("Back to defaults: /model default · more: /model list, /model status")
	b.WriteString(c.sharedNote())
	return b.String()
}

// credentialSummary says whether a provider has a usable credential and
// where it comes from.
func (c *call) credentialSummary(p string) string {
	var src []string
	for _, id := range c.snap.ProfileIDs(p) {
		switch gateway.ProfileStatus(c.snap.Profiles[id], c.now) {
		case gateway.StatusExpired, gateway.StatusMissing:
		default:
			src = append(src, id)
		}
	}
	if v, ok := c.envVar(p); ok {
		src = append(src, "env "+v.Name)
	}
	if c.cfg.Providers[p].HasAPIKey {
		src = append(src, "config apiKey")
	}
	if len(src) == 0 {
		return fmt.Sprintf("no credential (add one: `opensoul models auth paste-token --provider %s%s`)", p, c.agentFlag())
	}
	return "credential: " + strings.Join(src, ", ")
}

// renderList answers /model list: per provider, its configured models
// with aliases and whether it has a credential.
func (c *call) renderList() string {
	var b strings.Builder
	if len(c.cfg.Models) > 0 {
		b.WriteString("Models (agents.defaults.models; only these are accepted):\n")
	} else {
		b.WriteString("Any provider/model is accepted (agents.defaults.models is empty). Configured models:\n")
	}
	current, _ := c.currentModel()
	if c.h.limits != nil {
		c.headroom = gwusage.Tightest(gwusage.Owned(c.h.limits(), func(id string) string { return c.snap.Owner[id] }))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, p := range c.providersShown() {
		here := ""
		if p == c.req.Provider {
			here = "  ← this chat"
		}
		fmt.Fprintf(tw, "%s — %s%s\n", p, c.credentialSummary(p), here)
		for _, full := range c.listedModels(p) {
			alias := c.cfg.Models[full]
			var tags []string
			if full == c.cfg.DefaultModel {
				tags = append(tags, "default")
			}
			if slices.Contains(c.cfg.Fallbacks, full) {
				tags = append(tags, "fallback")
			}
			if full == current {
				tags = append(tags, "current")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", orWord(alias, "-"), full, strings.Join(tags, ", "))
		}
	}
	tw.Flush()
	b.WriteString("Switch: /model <alias|provider/model> · pin a credential: /model <model>@<profile> · details: /model status")
	return trimLines(b.String())
}

// listedModels are a provider's models to show: the configured list, else
// the default and fallbacks.
func (c *call) listedModels(p string) []string {
	refs := sortedKeys(c.cfg.Models)
	if len(refs) == 0 {
		refs = append([]string{c.cfg.DefaultModel}, c.cfg.Fallbacks...)
	}
	var out []string
	for _, r := range refs {
		if q, _, ok := strings.Cut(r, "/"); ok && q == p && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// renderStatus answers /model status: the session, the agent and its auth
// file, and per provider the endpoint and every profile with its state.
func (c *call) renderStatus() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Session %q, agent %s, via /%s (%s)\n", c.req.Session, c.req.Agent, c.req.Provider, c.req.API)
	fmt.Fprintf(&b, "Model: %s\n", c.modelLine())
	def := orWord(c.cfg.DefaultModel, "none")
	if len(c.cfg.Fallbacks) > 0 {
		def += "; fallbacks: " + strings.Join(c.cfg.Fallbacks, ", ")
	}
	fmt.Fprintf(&b, "Default model: %s\n", def)
	fmt.Fprintf(&b, "Credential: %s\n", c.credentialLine())
	fmt.Fprintf(&b, "Auth file: %s\n", c.h.st.ProfilesPath(c.req.Agent))
	if c.req.Agent != store.DefaultAgent {
		fmt.Fprintf(&b, "Base profiles (agent main): %s\n", c.h.st.ProfilesPath(store.DefaultAgent))
	}
	if c.h.limits != nil {
		c.headroom = gwusage.Tightest(gwusage.Owned(c.h.limits(), func(id string) string { return c.snap.Owner[id] }))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, p := range c.providersShown() {
		c.statusProvider(tw, p)
	}
	tw.Flush()
	b.WriteString(c.sharedNote())
	return trimLines(strings.TrimRight(b.String(), "\n"))
}

func (c *call) statusProvider(tw *tabwriter.Writer, p string) {
	endpoint := "not configured (set providers." + p + ".baseUrl)"
	if u := c.cfg.Providers[p].BaseURL; u != "" {
		endpoint = u
	}
	fmt.Fprintf(tw, "\n%s · endpoint %s · %s\n", p, endpoint, c.orderText(p))
	next, dec := c.next(p)
	model := c.modelFor(p)
	ids := c.snap.ProfileIDs(p)
	for _, id := range c.displayOrder(ids, dec) {
		m := c.marks(id, model, dec)
		if id == next {
			m = append([]string{"next"}, m...)
		}
		if h := c.headroom[id]; h != nil {
			m = append(m, "headroom "+h.Text(c.now))
		}
		owner := ""
		if o := c.snap.Owner[id]; o != "" && o != c.req.Agent {
			owner = " (from agent " + o + ")"
		}
		fmt.Fprintf(tw, "  %s%s\t%s\t%s\n", id, owner, label(c.snap.Profiles[id]), strings.Join(m, ", "))
	}
	if fb := c.envFallback(p); fb.name != "" {
		w := "used when no profile can serve"
		if next == "" && c.pinFor(p) == nil {
			w = "next (no profile can serve)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", fb.name, fb.masked, w)
	} else if len(ids) == 0 {
		fmt.Fprintf(tw, "  no credential: `opensoul models auth paste-token --provider %s%s`\n", p, c.agentFlag())
	}
}

// displayOrder lists candidates in policy order, then cooling profiles
// (soonest recovery first), then the rest.
func (c *call) displayOrder(ids []string, dec *policy.Decision) []string {
	if dec == nil {
		return ids
	}
	out := make([]string, 0, len(ids))
	for _, group := range [][]string{dec.Candidates, dec.Cooling, ids} {
		for _, id := range group {
			if slices.Contains(ids, id) && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// orderText names the order in force for a provider.
func (c *call) orderText(p string) string {
	if o := c.snap.Order[p]; len(o) > 0 {
		return "order (agent store): " + strings.Join(o, " ")
	}
	if o := c.cfg.Order[p]; len(o) > 0 {
		return "order (config auth.order): " + strings.Join(o, " ")
	}
	return "order: round-robin (oauth, token, api_key; least recently used first)"
}
