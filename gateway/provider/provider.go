// Package provider is OpenSoul's one table of what it knows about each
// built-in provider: the default base URL, the environment variables that
// can hold a credential, the wire APIs it speaks, the shape of its error
// bodies, how a credential is presented in headers, which token kinds it
// issues (and whether it has setup-tokens), and the hints that tell its
// clients apart. OAuth clients are not here: they are data a provider
// module declares (the oauth of its info answer, wasm/ABI.md), with
// providers.<p>.oauth in config laid over it.
//
// Every per-provider fact lives here, so the gateway, the CLI, connect
// recipes and usage parsing look a provider up instead of
// growing one more `switch provider` per file. A provider the table does
// not know (one the user configured) gets the generic answer from For:
// NAME_API_KEY, an OpenAI-shaped error body, a Bearer header.
//
// What users extend stays in provider modules (wasm/ABI.md): a module
// checks secrets, builds headers and classifies failures at run time; this
// table holds only what OpenSoul itself must know before or without one.
//
// The package is a leaf: it imports only the standard library, so both
// gateway and cli (and the leaves below gateway) can read it. A test
// keeps it that way. Values returned are copies; the table cannot be
// changed from outside.
package provider

import (
	"maps"
	"slices"
	"strings"
)

// Credential types, the values of store.Credential.Type (gateway/store
// keeps the same strings; a gateway test checks they agree).
const (
	CredAPIKey = "api_key" // sent as the provider's API-key header
	CredToken  = "token"   // a setup-token or OAuth access token, sent as a Bearer
)

// Token kinds a provider module reports for a secret (wasm.Kind*).
const (
	KindAPIKey      = "api_key"
	KindSetupToken  = "setup_token"
	KindOAuthAccess = "oauth_access"
)

// CredentialType is the store credential type for a module's token kind:
// API keys are api_key, setup-tokens and OAuth access tokens are token.
// ok is false for a kind that says nothing about the type ("unknown").
func CredentialType(kind string) (typ string, ok bool) {
	switch kind {
	case KindAPIKey:
		return CredAPIKey, true
	case KindSetupToken, KindOAuthAccess:
		return CredToken, true
	}
	return "", false
}

// Wire APIs, the values of the policy input's request.api.
const (
	APIAnthropicMessages = "anthropic-messages" // POST …/messages
	APIOpenAICompletions = "openai-completions" // POST …/chat/completions
	APIOpenAIResponses   = "openai-responses"   // POST …/responses
)

// wirePaths maps the end of a request path to its wire API.
var wirePaths = []struct{ suffix, api string }{
	{"/messages", APIAnthropicMessages},
	{"/chat/completions", APIOpenAICompletions},
	{"/responses", APIOpenAIResponses},
}

// ErrorShape is the JSON shape of a provider's error bodies; the gateway
// answers in it so a client's SDK parses OpenSoul's own errors.
type ErrorShape int

const (
	// ErrorsOpenAI is {"error":{"message","type","code"}}: OpenAI's shape,
	// which OpenRouter and most others share.
	ErrorsOpenAI ErrorShape = iota
	// ErrorsAnthropic is {"type":"error","error":{"type","message"}}.
	ErrorsAnthropic
)

// EnvVar names a variable that can hold a provider credential.
type EnvVar struct {
	Name string
	Type string // CredAPIKey or CredToken
}

// Presentation is how one credential type goes on the wire: the secret in
// Header after Prefix, Extra headers set beside it, Remove headers dropped
// (so a client's own placeholder key never reaches the provider).
type Presentation struct {
	Header string
	Prefix string            // "Bearer " or ""
	Extra  map[string]string // nil: none
	Remove []string
}

// SetupToken describes a provider's long-lived subscription token, made
// by its own CLI and pasted into `opensoul models auth setup-token`.
type SetupToken struct {
	Command string // the command that prints one
	Prefix  string // every setup-token starts with this
	MinLen  int    // a shorter paste was cut off (often at a line wrap)
	// APIKeyPrefix starts the provider's API keys, so a pasted API key is
	// told apart from a mangled setup-token.
	APIKeyPrefix string
}

// ClientHint is room for a way to recognise a client of this provider's
// API from its request (issue 10): a header whose value starts with Prefix
// names Client. Empty for every provider today.
type ClientHint struct {
	Header string
	Prefix string
	Client string
}

// ClientScope is an error answer by which the provider says a credential
// works for one client only: a body containing Match (lower case) means
// the credential is limited to Client, as the gateway names clients
// (gateway/client.go, input.request.client.name). Used when no provider
// module classifies the answer; modules say it themselves (classify's
// scope, wasm/ABI.md).
type ClientScope struct {
	Match  string
	Client string
	Hint   string // what the user sees
}

// ModelAlias is a built-in short name for a provider's model in chat
// commands (/model sonnet). Configured aliases (agents.defaults.models)
// come first; a built-in one names the configured model of its Family
// when the configuration lists models (and nothing when it lists none of
// the family), else Model.
type ModelAlias struct {
	Alias  string // what the user types: "sonnet"
	Model  string // the model it names when no list is configured: "claude-sonnet-5"
	Family string // the prefix of the model ids it stands for: "claude-sonnet-"
}

// Provider is what OpenSoul knows about one provider.
type Provider struct {
	Name    string
	Title   string // how the provider calls itself ("OpenAI"), for messages
	BaseURL string // default upstream; "" for a provider the table does not know

	// Env lists, in priority order, the variables that can serve this
	// provider (DESIGN §3). The last one is always its API key.
	Env []EnvVar

	// APIs are the wire APIs the gateway recognises on this provider's
	// routes; a path speaking another gets no request.api.
	APIs []string
	// APIPrefix is the path below BaseURL every API of the provider lives
	// under ("/v1"). A wire API path outside it (/anthropic/messages, from
	// a client given the wrong base URL) is answered 404 by the gateway,
	// naming the right base URL, instead of being forwarded. "": any path.
	APIPrefix string

	Errors ErrorShape

	// APIKey and Token say how each credential type is presented when no
	// provider module supplies headers.
	APIKey Presentation
	Token  Presentation

	// Kinds are the token kinds this provider issues; SetupToken is nil
	// unless the provider has setup-tokens.
	Kinds      []string
	SetupToken *SetupToken

	// Onboard: `opensoul onboard` asks for this provider's API key.
	Onboard bool

	ClientHints []ClientHint // nil: none known yet (issue 10)
	// ClientScopes are the answers that limit a credential to one client.
	ClientScopes []ClientScope
	// Aliases are the built-in short model names (/model sonnet).
	Aliases []ModelAlias
}

// Alias returns the provider's built-in alias called name (any case).
func (p Provider) Alias(name string) (ModelAlias, bool) {
	for _, a := range p.Aliases {
		if strings.EqualFold(a.Alias, name) {
			return a, true
		}
	}
	return ModelAlias{}, false
}

// ScopedTo returns the rule whose text body (an upstream error) contains,
// if any: the credential then serves that rule's client only.
func (p Provider) ScopedTo(body string) (ClientScope, bool) {
	lower := strings.ToLower(body)
	for _, s := range p.ClientScopes {
		if strings.Contains(lower, s.Match) {
			return s, true
		}
	}
	return ClientScope{}, false
}

var bearer = Presentation{Header: "authorization", Prefix: "Bearer ", Remove: []string{"x-api-key"}}

// builtin is the table, in the order providers are listed to users.
var builtin = []Provider{
	{
		Name:      "anthropic",
		Title:     "Anthropic",
		BaseURL:   "https://api.anthropic.com",
		Env:       []EnvVar{{"ANTHROPIC_OAUTH_TOKEN", CredToken}, {"ANTHROPIC_API_KEY", CredAPIKey}},
		APIs:      []string{APIAnthropicMessages, APIOpenAICompletions, APIOpenAIResponses},
		APIPrefix: "/v1",
		Errors:    ErrorsAnthropic,
		APIKey:    Presentation{Header: "x-api-key", Remove: []string{"authorization"}},
		Token: Presentation{Header: "authorization", Prefix: "Bearer ",
			Extra: map[string]string{"anthropic-beta": "oauth-2025-04-20"}, Remove: []string{"x-api-key"}},
		Kinds: []string{KindAPIKey, KindSetupToken, KindOAuthAccess},
		SetupToken: &SetupToken{
			Command: "claude setup-token", Prefix: "sk-ant-oat01-", MinLen: 108, APIKeyPrefix: "sk-ant-api",
		},
		Onboard: true,
		// A Claude subscription's setup-token, sent by another client.
		ClientScopes: []ClientScope{{Match: "only authorized for use with claude code", Client: "claude-code",
			Hint: "this token only works inside Claude Code; it is kept for Claude Code requests, and other clients need an Anthropic API key"}},
		Aliases: []ModelAlias{
			{"sonnet", "claude-sonnet-5", "claude-sonnet-"},
			{"opus", "claude-opus-5", "claude-opus-"},
			{"haiku", "claude-haiku-5", "claude-haiku-"},
		},
	},
	{
		Name:      "openai",
		Title:     "OpenAI",
		BaseURL:   "https://api.openai.com",
		Env:       []EnvVar{{"OPENAI_API_KEY", CredAPIKey}},
		APIs:      []string{APIOpenAICompletions, APIOpenAIResponses},
		APIPrefix: "/v1",
		Errors:    ErrorsOpenAI,
		APIKey:    bearer,
		Token:     bearer,
		Kinds:     []string{KindAPIKey, KindOAuthAccess},
		Onboard:   true,
		Aliases: []ModelAlias{
			{"gpt", "gpt-5", "gpt-"},
			{"gpt-mini", "gpt-5-mini", "gpt-5-mini"},
		},
	},
	{
		Name:      "openrouter",
		Title:     "OpenRouter",
		BaseURL:   "https://openrouter.ai/api",
		Env:       []EnvVar{{"OPENROUTER_API_KEY", CredAPIKey}},
		APIs:      []string{APIOpenAICompletions, APIOpenAIResponses},
		APIPrefix: "/v1",
		Errors:    ErrorsOpenAI,
		APIKey:    bearer,
		Token:     bearer,
		Kinds:     []string{KindAPIKey},
		Onboard:   true,
	},
	{
		Name:    "google",
		Title:   "Google",
		BaseURL: "https://generativelanguage.googleapis.com",
		Env:     []EnvVar{{"GEMINI_API_KEY", CredAPIKey}},
		APIs:    []string{APIOpenAICompletions, APIOpenAIResponses},
		Errors:  ErrorsOpenAI,
		APIKey:  Presentation{Header: "x-goog-api-key", Remove: []string{"authorization"}},
		Token:   Presentation{Header: "x-goog-api-key", Remove: []string{"authorization"}},
		Kinds:   []string{KindAPIKey},
		Aliases: []ModelAlias{{"gemini", "gemini-3", "gemini-"}},
	},
}

// Builtin returns a copy of every built-in provider, in the order they
// are listed to users.
func Builtin() []Provider {
	out := make([]Provider, len(builtin))
	for i, p := range builtin {
		out[i] = p.clone()
	}
	return out
}

// Names lists the built-in providers' names, in table order.
func Names() []string {
	out := make([]string, len(builtin))
	for i, p := range builtin {
		out[i] = p.Name
	}
	return out
}

// Lookup returns the built-in provider called name.
func Lookup(name string) (Provider, bool) {
	for _, p := range builtin {
		if p.Name == name {
			return p.clone(), true
		}
	}
	return Provider{}, false
}

// For returns what OpenSoul assumes about any provider: the table's entry
// for a built-in one, else the generic facts for a provider the user
// configured (NAME_API_KEY with "-" and "." as "_", the OpenAI APIs and
// error shape, Bearer headers).
func For(name string) Provider {
	if p, ok := Lookup(name); ok {
		return p
	}
	env := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	return Provider{
		Name:   name,
		Title:  name,
		Env:    []EnvVar{{env + "_API_KEY", CredAPIKey}},
		APIs:   []string{APIOpenAICompletions, APIOpenAIResponses},
		Errors: ErrorsOpenAI,
		APIKey: bearer.clone(),
		Token:  bearer.clone(),
		Kinds:  []string{KindAPIKey},
	}
}

// APIKeyVar is the variable that holds the provider's API key.
func (p Provider) APIKeyVar() string { return p.Env[len(p.Env)-1].Name }

// APIOf names the wire API of a request path on this provider's route,
// or "" when the path is none the provider speaks.
func (p Provider) APIOf(path string) string {
	for _, w := range wirePaths {
		if strings.HasSuffix(path, w.suffix) {
			if slices.Contains(p.APIs, w.api) {
				return w.api
			}
			return ""
		}
	}
	return ""
}

// OutsideAPI reports whether path (below the provider's route) names one
// of its wire APIs but outside APIPrefix: a client with the wrong base URL.
func (p Provider) OutsideAPI(path string) bool {
	return p.APIPrefix != "" && p.APIOf(path) != "" && !strings.HasPrefix(path, p.APIPrefix+"/")
}

// Presentation returns how a credential of type typ is presented.
func (p Provider) Presentation(typ string) Presentation {
	if typ == CredAPIKey {
		return p.APIKey.clone()
	}
	return p.Token.clone()
}

// clone copies p's slices and maps so callers cannot change the table.
func (p Provider) clone() Provider {
	p.Env = slices.Clone(p.Env)
	p.APIs = slices.Clone(p.APIs)
	p.Kinds = slices.Clone(p.Kinds)
	p.APIKey = p.APIKey.clone()
	p.Token = p.Token.clone()
	if p.SetupToken != nil {
		st := *p.SetupToken
		p.SetupToken = &st
	}
	p.ClientHints = slices.Clone(p.ClientHints)
	p.ClientScopes = slices.Clone(p.ClientScopes)
	p.Aliases = slices.Clone(p.Aliases)
	return p
}

func (h Presentation) clone() Presentation {
	h.Extra = maps.Clone(h.Extra)
	h.Remove = slices.Clone(h.Remove)
	return h
}
