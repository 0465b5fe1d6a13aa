package chat

import (
	"fmt"
	"strings"

	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
)

// update changes the session in sessions.json under the store's lock and
// asks the gateway to reread it. fn is told whether the session existed
// and returns false to delete it (or not create it).
func (c *call) update(fn func(s *store.Session, existed bool) (keep bool)) error {
	id, at := c.req.Session, c.now.UnixMilli()
	err := c.h.st.UpdateSessions(c.req.Agent, func(ss *store.Sessions) error {
		s, existed := ss.Sessions[id], true
		if s == nil {
			s, existed = &store.Session{CreatedAt: at}, false
		}
		if !fn(s, existed) {
			ss.Reset(id, at)
			return nil
		}
		s.UpdatedAt = at
		ss.Sessions[id] = s
		return nil
	})
	if err != nil {
		return err
	}
	if c.h.refresh != nil {
		if err := c.h.refresh(c.req.Agent); err != nil {
			// The file is written; the gateway's poller picks it up.
			c.h.log.Warn("chat: gateway refresh failed", "agent", c.req.Agent, "err", err)
		}
	}
	return nil
}

// reset answers /new and /reset: the session's overrides and pins go.
func (c *call) reset(cmd command) (string, error) {
	if err := c.update(func(*store.Session, bool) bool { return false }); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "New session: %s starts afresh.", c.sessionName())
	var dropped []string
	if c.session.ModelOverride != "" {
		dropped = append(dropped, "model override "+c.session.ModelOverride)
	}
	if c.session.AuthProfileOverride != "" {
		dropped = append(dropped, pinWord(c.session.AuthProfileOverrideSource)+" pin on "+c.session.AuthProfileOverride)
	}
	if len(dropped) > 0 {
		fmt.Fprintf(&b, " Dropped: %s.", strings.Join(dropped, ", "))
	}
	b.WriteString(" Requests use the model your client asks for, and credentials are chosen by the policy again.")
	b.WriteString(c.sharedNote())
	return b.String(), nil
}

// clearOverride answers /model default: the model override and any pin go.
func (c *call) clearOverride() (string, error) {
	if err := c.update(func(s *store.Session, existed bool) bool {
		s.ModelOverride, s.AuthProfileOverride, s.AuthProfileOverrideSource = "", "", ""
		return existed
	}); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("Back to defaults for " + c.sessionName() + ": ")
	if c.req.Model != "" {
		fmt.Fprintf(&b, "requests use the model your client asks for (now %s/%s)", c.req.Provider, c.req.Model)
	} else {
		b.WriteString("requests use the model your client asks for")
	}
	if c.cfg.DefaultModel != "" {
		fmt.Fprintf(&b, "; the configured default is %s", c.cfg.DefaultModel)
	}
	b.WriteString(", and credentials are chosen by the policy again")
	if p := c.session.AuthProfileOverride; p != "" {
		fmt.Fprintf(&b, " (%s pin on %s removed)", pinWord(c.session.AuthProfileOverrideSource), p)
	}
	b.WriteString(".")
	b.WriteString(c.sharedNote())
	return b.String(), nil
}

// setModel answers /model <ref>[@profile].
func (c *call) setModel(arg string) (string, error) {
	ref, profile, hasAt := c.splitRef(arg)
	if hasAt && ref == "" {
		return fmt.Sprintf("Name a model before the @: /model <alias-or-provider/model>@%s (for example /model %s@%s). "+
			"/model default clears the model and the pin.", profile, c.exampleRef(), profile), nil
	}
	if hasAt && profile == "" {
		return fmt.Sprintf("Name a credential profile after the @, for example /model %s@%s:default. Known profiles: %s.",
			ref, c.req.Provider, c.profileList(c.req.Provider)), nil
	}
	full, alias, msg := c.resolveModel(ref)
	if msg != "" {
		return msg, nil
	}
	provider, _, _ := strings.Cut(full, "/")
	if provider != c.req.Provider {
		return c.otherRouteMessage(ref, full, provider), nil
	}
	var cred store.Credential
	if hasAt {
		var ok bool
		cred, ok = c.snap.Profiles[profile]
		switch {
		case !ok:
			return fmt.Sprintf("Unknown profile %q for agent %s. %s profiles: %s. Add one with `opensoul models auth paste-token --provider %s%s`.",
				profile, c.req.Agent, provider, c.profileList(provider), provider, c.agentFlag()), nil
		case cred.Provider != provider:
			return fmt.Sprintf("Profile %s is %s %s credential; %s needs %s %s profile: %s.",
				profile, article(cred.Provider), cred.Provider, full, article(provider), provider, c.profileList(provider)), nil
		}
	}
	old := c.session
	if err := c.update(func(s *store.Session, _ bool) bool {
		s.ModelOverride = full
		switch {
		case hasAt:
			s.AuthProfileOverride, s.AuthProfileOverrideSource = profile, store.PinUser
		case s.AuthProfileOverrideSource == store.PinUser:
			s.AuthProfileOverride, s.AuthProfileOverrideSource = "", ""
		}
		return true
	}); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Model for %s: %s", c.sessionName(), full)
	if alias != "" {
		fmt.Fprintf(&b, " (%s)", alias)
	}
	b.WriteString(". Later requests in this session have their model rewritten to it.\n")
	switch {
	case hasAt:
		fmt.Fprintf(&b, "Credential: pinned to %s (%s), strict: when it fails the request fails, it does not switch credential.", profile, label(cred))
		if warn := c.profileWarning(profile, full); warn != "" {
			b.WriteString("\nNote: " + warn)
		}
	case old.AuthProfileOverrideSource == store.PinUser:
		fmt.Fprintf(&b, "Credential: chosen by the policy again (your pin on %s was removed; add @<profile> to pin one).", old.AuthProfileOverride)
	case old.AuthProfileOverride != "":
		fmt.Fprintf(&b, "Credential: %s, kept while it works (the first that succeeded in this session).", old.AuthProfileOverride)
	default:
		fmt.Fprintf(&b, "Credential: chosen by the policy. To pin one: /model %s@<profile> (%s).", orWord(alias, full), c.profileList(provider))
	}
	b.WriteString("\n/model default undoes this.")
	b.WriteString(c.sharedNote())
	return b.String(), nil
}

// splitRef splits "<ref>@<profile>". Profile ids may hold an @ (OAuth
// e-mails) and some model ids do too, so a split whose right side is a
// known profile wins; otherwise the first @ splits.
func (c *call) splitRef(arg string) (ref, profile string, hasAt bool) {
	if !strings.Contains(arg, "@") {
		return arg, "", false
	}
	if _, _, msg := c.resolveModel(arg); msg == "" && len(c.cfg.Models) > 0 {
		return arg, "", false // a listed model id with an @ in it
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] == '@' {
			if _, ok := c.snap.Profiles[arg[i+1:]]; ok {
				return arg[:i], arg[i+1:], true
			}
		}
	}
	ref, profile, _ = strings.Cut(arg, "@")
	return ref, profile, true
}

// profileWarning says why a freshly pinned profile may not serve now.
func (c *call) profileWarning(id, full string) string {
	_, model, _ := strings.Cut(full, "/")
	m := c.marks(id, model, nil)
	for _, w := range m {
		if strings.HasPrefix(w, "cooldown") || strings.HasPrefix(w, "disabled") || strings.HasPrefix(w, "expired") || w == "no secret" {
			return fmt.Sprintf("%s is %s; with a strict pin requests fail until it recovers (or /model default).", id, w)
		}
	}
	return ""
}

// otherRouteMessage explains that a model of another provider cannot be
// used through this route.
func (c *call) otherRouteMessage(ref, full, provider string) string {
	what := full
	if ref != full {
		what = fmt.Sprintf("%s (%s)", ref, full)
	}
	local := c.modelsOf(c.req.Provider)
	pick := "any " + c.req.Provider + "/<model>"
	if len(local) > 0 {
		pick = strings.Join(local, ", ")
	}
	return fmt.Sprintf("%s is served by %s, but this chat goes through the gateway's /%s route, and a session's model stays within its provider's API. "+
		"Point a client at /%s/… to use it, or pick a %s model here: %s.", what, provider, c.req.Provider, provider, c.req.Provider, pick)
}

// sessionName names the session in answers.
func (c *call) sessionName() string {
	return fmt.Sprintf("session %q (agent %s)", c.req.Session, c.req.Agent)
}

// sharedNote warns that a caller without x-opensoul-session shares the
// agent's default session with every other such caller.
func (c *call) sharedNote() string {
	if c.req.SessionSet {
		return ""
	}
	return "\n(Your client sends no x-opensoul-session header, so this applies to every client of agent " + c.req.Agent +
		" that sends none. Set the header to keep sessions apart.)"
}

func (c *call) agentFlag() string {
	if c.req.Agent == store.DefaultAgent {
		return ""
	}
	return " --agent " + c.req.Agent
}

func pinWord(source string) string {
	if source == store.PinUser {
		return "your"
	}
	return "automatic"
}

// label is a credential as answers show it: type and masked secret.
func label(cr store.Credential) string {
	m := scrub.Mask(cr.Secret())
	if m == "" {
		m = "no secret"
	}
	s := cr.Type + " " + m
	if cr.Email != "" {
		s += " " + cr.Email
	}
	return s
}

// article is "an" before a vowel sound, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}
