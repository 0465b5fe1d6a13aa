package chat

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	providers "github.com/opensoul/opensoul/gateway/provider"
)

// resolveModel turns what the user typed into provider/model. When
// agents.defaults.models lists models only those are accepted — by
// provider/model, alias, (when unambiguous) bare model id, or a built-in
// alias naming a listed model; otherwise any provider/model of a
// configured provider is, and built-in aliases (sonnet, opus, gpt, …).
// msg, when set, is the answer explaining why ref was refused.
func (c *call) resolveModel(ref string) (full, alias, msg string) {
	if len(c.cfg.Models) > 0 {
		return c.resolveListed(ref)
	}
	provider, model, ok := strings.Cut(ref, "/")
	if !ok || provider == "" || model == "" {
		if full := c.knownBare(ref); full != "" {
			return full, "", ""
		}
		if full, alias, ok := c.builtinAlias(ref); ok {
			return full, alias, ""
		}
		return "", "", fmt.Sprintf("Unknown model %q. Give it as provider/model, for example /model %s, or a built-in alias (%s). "+
			"(Add your own aliases under agents.defaults.models.)", ref, c.exampleRef(), strings.Join(c.builtinAliases(), ", "))
	}
	if provider != c.req.Provider && strings.Contains(c.req.Model, "/") {
		// The route's provider names models vendor/model (OpenRouter):
		// "anthropic/claude-x" typed here is one of its models.
		return c.req.Provider + "/" + ref, "", ""
	}
	if _, ok := c.cfg.Providers[provider]; !ok {
		return "", "", fmt.Sprintf("Unknown provider %q in %q. Configured providers: %s.", provider, ref, strings.Join(c.providerNames(), ", "))
	}
	return ref, "", ""
}

func (c *call) resolveListed(ref string) (full, alias, msg string) {
	keys := sortedKeys(c.cfg.Models)
	for _, k := range keys {
		if strings.EqualFold(k, ref) {
			return k, c.cfg.Models[k], ""
		}
	}
	for _, k := range keys {
		if a := c.cfg.Models[k]; a != "" && strings.EqualFold(a, ref) {
			return k, a, ""
		}
	}
	var bare []string
	for _, k := range keys {
		if _, m, _ := strings.Cut(k, "/"); strings.EqualFold(m, ref) {
			bare = append(bare, k)
		}
	}
	if len(bare) == 1 {
		return bare[0], c.cfg.Models[bare[0]], ""
	}
	if full, alias, ok := c.builtinAlias(ref); ok {
		return full, alias, ""
	}
	var allowed []string
	for _, k := range keys {
		allowed = append(allowed, c.refFor(k, c.cfg.Models[k]))
	}
	return "", "", fmt.Sprintf("Unknown model %q: this gateway accepts only the models in agents.defaults.models: %s.", ref, strings.Join(allowed, ", "))
}

// builtinAlias resolves a built-in alias (the provider table's, see
// providers.ModelAlias) of a configured provider, the route's provider
// first. With agents.defaults.models listing models it names a listed
// model of the alias's family: the table's own model when it is listed,
// else the only one of the family (none or several: no match). Without a
// list it names the configured default or fallback of the family, else the
// table's model.
func (c *call) builtinAlias(ref string) (full, alias string, ok bool) {
	names := c.providerNames()
	if i := slices.Index(names, c.req.Provider); i > 0 {
		names = append([]string{c.req.Provider}, slices.Delete(names, i, i+1)...)
	}
	for _, name := range names {
		a, found := providers.For(name).Alias(ref)
		if !found {
			continue
		}
		if len(c.cfg.Models) > 0 {
			var family []string
			for _, k := range sortedKeys(c.cfg.Models) {
				if p, m, _ := strings.Cut(k, "/"); p == name && strings.HasPrefix(m, a.Family) {
					family = append(family, k)
				}
			}
			if own := name + "/" + a.Model; slices.Contains(family, own) {
				return own, a.Alias, true
			}
			if len(family) == 1 {
				return family[0], a.Alias, true
			}
			continue
		}
		for _, k := range append([]string{c.cfg.DefaultModel}, c.cfg.Fallbacks...) {
			if p, m, _ := strings.Cut(k, "/"); p == name && strings.HasPrefix(m, a.Family) {
				return k, a.Alias, true
			}
		}
		return name + "/" + a.Model, a.Alias, true
	}
	return "", "", false
}

// builtinAliases lists the built-in aliases of the configured providers.
func (c *call) builtinAliases() []string {
	var out []string
	for _, name := range c.providerNames() {
		for _, a := range providers.For(name).Aliases {
			out = append(out, a.Alias)
		}
	}
	if len(out) == 0 {
		return []string{"none for these providers"}
	}
	return out
}

// knownBare resolves a bare model id against the configured default and
// fallbacks (the only models known when no list is configured).
func (c *call) knownBare(ref string) string {
	for _, k := range append([]string{c.cfg.DefaultModel}, c.cfg.Fallbacks...) {
		if _, m, ok := strings.Cut(k, "/"); ok && ref != "" && strings.EqualFold(m, ref) {
			return k
		}
	}
	return ""
}

// refFor is how a model is named in answers: "alias (provider/model)".
func (c *call) refFor(full, alias string) string {
	if alias == "" {
		return full
	}
	return alias + " (" + full + ")"
}

// exampleRef is a model the user could type here.
func (c *call) exampleRef() string {
	if p, _, _ := strings.Cut(c.cfg.DefaultModel, "/"); p == c.req.Provider {
		if a := c.cfg.Models[c.cfg.DefaultModel]; a != "" {
			return a
		}
		if len(c.cfg.Models) == 0 {
			return c.cfg.DefaultModel
		}
	}
	var first string
	for _, k := range sortedKeys(c.cfg.Models) {
		if p, _, _ := strings.Cut(k, "/"); p == c.req.Provider {
			if a := c.cfg.Models[k]; a != "" {
				return a
			}
			if first == "" {
				first = k
			}
		}
	}
	if first != "" {
		return first
	}
	if c.req.Model != "" {
		return c.req.Provider + "/" + c.req.Model
	}
	return c.req.Provider + "/<model>"
}

// modelsOf lists the configured models of a provider as "alias (full)".
func (c *call) modelsOf(provider string) []string {
	var out []string
	for _, k := range sortedKeys(c.cfg.Models) {
		if p, _, _ := strings.Cut(k, "/"); p == provider {
			out = append(out, c.refFor(k, c.cfg.Models[k]))
		}
	}
	return out
}

// profileList lists an agent's profile ids for provider, or says none.
func (c *call) profileList(provider string) string {
	ids := c.snap.ProfileIDs(provider)
	if len(ids) == 0 {
		return "none yet"
	}
	return strings.Join(ids, ", ")
}

func (c *call) providerNames() []string {
	return sortedKeys(c.cfg.Providers)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// providersShown are the providers the list and status views cover: those
// with models, profiles or a credential, the route's, and the default's.
func (c *call) providersShown() []string {
	set := map[string]bool{c.req.Provider: true}
	if p, _, ok := strings.Cut(c.cfg.DefaultModel, "/"); ok {
		set[p] = true
	}
	for k := range c.cfg.Models {
		if p, _, ok := strings.Cut(k, "/"); ok {
			set[p] = true
		}
	}
	for _, cr := range c.snap.Profiles {
		set[cr.Provider] = true
	}
	env := c.h.env()
	for name, p := range c.cfg.Providers {
		if _, _, ok := env.Credential(name); ok || p.HasAPIKey {
			set[name] = true
		}
	}
	out := sortedKeys(set)
	// The route's provider first: it is the one this chat can use.
	if i := slices.Index(out, c.req.Provider); i > 0 {
		out = append([]string{c.req.Provider}, slices.Delete(out, i, i+1)...)
	}
	return out
}
