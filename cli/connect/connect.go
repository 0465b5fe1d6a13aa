// Package connect holds OpenSoul's client recipes: for each agent or SDK
// people point at the gateway (Claude Code, Codex, OpenClaw, the AI SDK,
// the official SDKs, LangChain, curl), the exact environment lines,
// config-file blocks and code that make it speak to the gateway, and the
// one safe way to write a client's own config file.
//
// Recipes are data (recipes.go): which wire APIs a client speaks, and
// text templates for its lines. What varies per user comes in a Setup
// built by `opensoul connect` from the running config: the gateway's
// address, the agent, the variable holding the gateway token and the
// configured providers with their base paths, read from the provider
// table (gateway/provider). A recipe never names a provider: it asks for
// a wire API, and Pick chooses the configured route that speaks it most
// natively. Every recipe is pinned by a golden file (testdata/), and the
// ones marked checked were run with the real client (testdata/clients/,
// README "Point your agent at OpenSoul").
package connect

import (
	"fmt"
	"slices"
	"strings"
)

// Route is one configured provider as clients reach it through the
// gateway.
type Route struct {
	Provider string   // the route name: requests go to /{Provider}/…
	Root     string   // gateway address + "/" + Provider: for clients that append /v1/… themselves
	API      string   // Root + the provider's API prefix (/v1): for clients that append only /messages, /responses…
	APIs     []string // the wire APIs the gateway recognises on the route, most native first
	Models   []string // models of this provider named in the config (without "provider/"); may be empty
}

// Model is the route's first configured model, or a placeholder the
// user replaces.
func (r Route) Model() string {
	if len(r.Models) > 0 {
		return r.Models[0]
	}
	return "MODEL"
}

// Setup is what a recipe is rendered from.
type Setup struct {
	Gateway string // "http://127.0.0.1:18789"
	// Agent is sent as x-opensoul-agent; "" for the default agent (no
	// header).
	Agent string
	// TokenVar is the variable clients read the gateway token from. It is
	// never a provider's key variable (ANTHROPIC_API_KEY…), so a gateway
	// or CLI started from the same shell cannot take it for a credential.
	TokenVar string
	// TokenFrom tells the user how TokenVar gets its value: a shell line
	// ("set -a; . ~/.opensoul/.env; set +a") or a comment.
	TokenFrom string
	Routes    []Route // configured providers, in the provider table's order
}

// Pick chooses the route a client speaking apis (in the client's order of
// preference) uses, and the API it speaks there: the route that lists
// one of them earliest (speaks it most natively: /anthropic for the
// Messages API even though it also takes OpenAI's), ties in table order;
// on that route, the client's most preferred API. ok is false when no
// configured route speaks any of them.
func (s Setup) Pick(apis []string) (r Route, api string, ok bool) {
	best := 0
	for _, route := range s.Routes {
		rank := -1
		for _, a := range apis {
			if i := slices.Index(route.APIs, a); i >= 0 && (rank < 0 || i < rank) {
				rank = i
			}
		}
		if rank >= 0 && (!ok || rank < best) {
			best, r, ok = rank, route, true
		}
	}
	if ok {
		for _, a := range apis {
			if slices.Contains(r.APIs, a) {
				return r, a, true
			}
		}
	}
	return r, "", ok
}

// Recipe is one client's rendered setup: what `opensoul connect <client>`
// prints (and --json emits).
type Recipe struct {
	Client  string    `json:"client"`
	Title   string    `json:"title"`
	Checked string    `json:"checked,omitempty"` // the client version the recipe was run with; "" unchecked
	Parts   []Part    `json:"parts"`
	Notes   []string  `json:"notes"`
	Missing []Missing `json:"missing"` // parts left out: no configured provider speaks their API
}

// Part is the recipe for one wire API of a client (the AI SDK has one
// for Anthropic's Messages API and one for OpenAI's).
type Part struct {
	Title    string   `json:"title"`
	Provider string   `json:"provider"` // the route used
	API      string   `json:"api"`      // the wire API it speaks
	Env      []string `json:"env"`      // shell lines (export NAME=value)
	File     *File    `json:"file,omitempty"`
	Code     *Code    `json:"code,omitempty"`
	Run      string   `json:"run,omitempty"` // a command that tries it
}

// File is a block for one of the client's own config files.
type File struct {
	Path   string `json:"path"`   // as the user knows it: "~/.codex/config.toml"
	Format string `json:"format"` // "toml" or "json"
	Text   string `json:"text"`   // the block to add, as printed
	// Writable: `opensoul connect --write` can merge the block into the
	// file (with a backup of the old one).
	Writable bool `json:"writable"`

	spec  *fileSpec // where the file is and how --write merges it
	block string    // the rendered block, before JSON nesting
}

// Code is a snippet in Lang.
type Code struct {
	Lang string `json:"lang"`
	Text string `json:"text"`
}

// Missing is a part of the recipe no configured provider can serve.
type Missing struct {
	Title string   `json:"title"`
	APIs  []string `json:"apis"`
}

// ErrUnknownClient is returned by Build for a client with no recipe.
type ErrUnknownClient struct{ Name string }

func (e ErrUnknownClient) Error() string {
	return fmt.Sprintf("no recipe for client %q; known clients: %s", e.Name, strings.Join(Clients(), ", "))
}

// Clients lists the clients with a recipe, in the order they are shown.
func Clients() []string {
	out := make([]string, len(recipes))
	for i, r := range recipes {
		out[i] = r.name
	}
	return out
}

// Title is a client's display name ("" for an unknown client).
func Title(client string) string {
	for _, r := range recipes {
		if r.name == client {
			return r.title
		}
	}
	return ""
}

// Build renders client's recipe for s. A recipe whose parts no configured
// provider can serve still comes back, with those parts in Missing.
func Build(client string, s Setup) (Recipe, error) {
	for _, rec := range recipes {
		if rec.name == client {
			return rec.build(s)
		}
	}
	return Recipe{}, ErrUnknownClient{client}
}
