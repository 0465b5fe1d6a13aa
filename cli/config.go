package cli

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/wasm"
)

// Config is OpenSoul's typed configuration. koanf merges defaults,
// opensoul.yaml, .env files, the process environment and flags into it;
// everything below cli/ receives plain values taken from it.
type Config struct {
	Gateway   GatewayConfig             `koanf:"gateway"`
	Agents    AgentsConfig              `koanf:"agents"`
	Auth      AuthConfig                `koanf:"auth"`
	Providers map[string]ProviderConfig `koanf:"providers"`
	Policy    PolicyConfig              `koanf:"policy"`
	Env       EnvConfig                 `koanf:"env"`
	Log       LogConfig                 `koanf:"log"`
	Usage     UsageConfig               `koanf:"usage"`
}

// GatewayConfig configures `opensoul gateway`.
type GatewayConfig struct {
	Listen           string            `koanf:"listen"`
	Auth             GatewayAuthConfig `koanf:"auth"`
	MaxBodyBytes     int64             `koanf:"maxBodyBytes"`
	BodyBudgetBytes  int64             `koanf:"bodyBudgetBytes"`
	BodyBudgetWaitMs int               `koanf:"bodyBudgetWaitMs"`
	Timeouts         TimeoutsConfig    `koanf:"timeouts"`
	Sessions         SessionsConfig    `koanf:"sessions"`
	Modules          ModulesConfig     `koanf:"modules"`
	// RetryWaitMaxMs is the longest recovery clients are asked to wait for
	// (429 + Retry-After); beyond it, or with every credential disabled,
	// the answer is final (x-should-retry: false). 0: 60000.
	RetryWaitMaxMs int `koanf:"retryWaitMaxMs"`
	// Preconnect opens a connection to each upstream the agents'
	// credentials go to before /readyz turns green (gateway.Config's
	// NoPreconnect is its opposite). Default true.
	Preconnect bool `koanf:"preconnect"`
	// SessionHeaders name the session when a request has no
	// x-opensoul-session (first present wins); nil: the built-in list.
	SessionHeaders []string `koanf:"sessionHeaders"`
}

// SessionsConfig bounds each agent's sessions.json.
type SessionsConfig struct {
	MaxPerAgent   int     `koanf:"maxPerAgent"`
	IdleDays      float64 `koanf:"idleDays"`
	MaxIDBytes    int     `koanf:"maxIdBytes"`
	MaxModelBytes int     `koanf:"maxModelBytes"`
}

// GatewayAuthConfig holds the tokens callers present. Token opens every
// agent; Agents[id] opens only agent id.
type GatewayAuthConfig struct {
	Token  string            `koanf:"token"`
	Agents map[string]string `koanf:"agents"`
}

// TimeoutsConfig bounds upstream calls and shutdown, in milliseconds.
type TimeoutsConfig struct {
	ConnectMs        int `koanf:"connectMs"`
	ResponseHeaderMs int `koanf:"responseHeaderMs"`
	IdleConnMs       int `koanf:"idleConnMs"`
	DrainMs          int `koanf:"drainMs"`
	BodyReadMs       int `koanf:"bodyReadMs"`
}

// AgentsConfig holds defaults shared by agents and, under each other key
// (agents.<id>), one agent's own settings.
type AgentsConfig struct {
	Default  string        `koanf:"default"`
	Defaults AgentDefaults `koanf:"defaults"`
	// Agents are the agents.<id> entries: every key but default and
	// defaults (so no agent called either can have one).
	Agents map[string]AgentConfig `koanf:",remain,omitempty"`
}

// AgentConfig is one agent's own settings.
type AgentConfig struct {
	// Attrs are free-form facts about the agent (team, purpose, budget
	// class…) that policies read as input.agent.attrs.
	Attrs map[string]string `koanf:"attrs"`
}

// AgentAttrs returns each configured agent's attributes (agents.<id>.attrs).
func (c AgentsConfig) AgentAttrs() map[string]map[string]string {
	out := map[string]map[string]string{}
	for id, a := range c.Agents {
		if len(a.Attrs) > 0 {
			out[id] = a.Attrs
		}
	}
	return out
}

// AgentDefaults are the model settings every agent starts from.
type AgentDefaults struct {
	Model  ModelConfig           `koanf:"model"`
	Models map[string]ModelEntry `koanf:"models"`
}

// ModelConfig names the primary model and its fallbacks as provider/model.
type ModelConfig struct {
	Primary   string   `koanf:"primary"`
	Fallbacks []string `koanf:"fallbacks"`
}

// ModelEntry is one allowed model; Alias is a short name for /model.
type ModelEntry struct {
	Alias string `koanf:"alias"`
}

// AuthConfig holds profile metadata (never secrets), orders and cooldowns.
type AuthConfig struct {
	Profiles  map[string]ProfileMeta `koanf:"profiles"`
	Order     map[string][]string    `koanf:"order"`
	Cooldowns CooldownConfig         `koanf:"cooldowns"`
	// RefreshSkewMs is how long before expiry OAuth logins are refreshed.
	RefreshSkewMs int `koanf:"refreshSkewMs"`
}

// ProfileMeta records that a profile exists and how it authenticates.
type ProfileMeta struct {
	Provider string `koanf:"provider"`
	Mode     string `koanf:"mode"` // api_key | token | oauth
}

// CooldownConfig tunes the cooldown math of DESIGN §4.
type CooldownConfig struct {
	FailureWindowHours  float64 `koanf:"failureWindowHours"`
	BillingBackoffHours float64 `koanf:"billingBackoffHours"`
	BillingMaxHours     float64 `koanf:"billingMaxHours"`
}

// ProviderConfig overrides or adds a provider.
type ProviderConfig struct {
	BaseURL string `koanf:"baseUrl"`
	APIKey  string `koanf:"apiKey"`
	Module  string `koanf:"module"`
	// OAuth supplies the provider's OAuth client, or overrides fields of
	// the one its provider module declares (the built-in openai module
	// declares OpenAI's Codex sign-in; wasm/ABI.md "info").
	OAuth oauth.Client `koanf:"oauth"`
}

// PolicyConfig lists directories of user Rego policies and bounds how long
// one decision may take.
type PolicyConfig struct {
	Dirs      []string `koanf:"dirs"`
	TimeoutMs int      `koanf:"timeoutMs"`
}

// EnvConfig adds environment values and the opt-in login-shell import.
type EnvConfig struct {
	Vars     map[string]string `koanf:"vars"`
	ShellEnv ShellEnvConfig    `koanf:"shellEnv"`
	// CwdDotenv lets ./.env in the working directory supply provider keys
	// and gateway tokens; off, they are ignored with a warning.
	CwdDotenv bool `koanf:"cwdDotenv"`
}

// ShellEnvConfig imports known provider keys from a login shell.
type ShellEnvConfig struct {
	Enabled   bool `koanf:"enabled"`
	TimeoutMs int  `koanf:"timeoutMs"`
}

// UsageConfig is the gateway's usage store (<state>/usage.db): what each
// credential spent, and the limits providers report.
type UsageConfig struct {
	Enabled       bool                   `koanf:"enabled"`
	RetentionDays float64                `koanf:"retentionDays"`
	Prices        map[string]usage.Price `koanf:"prices"` // by model name prefix, over usage.DefaultPrices
}

// LogConfig sets the gateway's log level and format (text or json).
type LogConfig struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

// DefaultConfig is the embedded default every source is merged over.
func DefaultConfig() Config {
	upstreams := map[string]ProviderConfig{} // default base URLs (DESIGN §7)
	for _, p := range providers.Builtin() {
		upstreams[p.Name] = ProviderConfig{BaseURL: p.BaseURL}
	}
	return Config{
		Gateway: GatewayConfig{
			Listen:           "127.0.0.1:18789",
			MaxBodyBytes:     32 << 20,
			BodyBudgetBytes:  128 << 20,
			BodyBudgetWaitMs: 2000,
			Preconnect:       true,
			Timeouts:         TimeoutsConfig{ConnectMs: 10_000, ResponseHeaderMs: 120_000, IdleConnMs: 90_000, DrainMs: 30_000, BodyReadMs: 60_000},
			Sessions:         SessionsConfig{MaxPerAgent: 1000, IdleDays: 28, MaxIDBytes: 256, MaxModelBytes: 256},
			Modules:          defaultModulesConfig(),
		},
		Agents: AgentsConfig{
			Default:  "main",
			Defaults: AgentDefaults{Model: ModelConfig{Primary: "anthropic/claude-sonnet-5"}},
		},
		Auth: AuthConfig{
			Cooldowns:     CooldownConfig{FailureWindowHours: 24, BillingBackoffHours: 5, BillingMaxHours: 24},
			RefreshSkewMs: int(keep.DefaultRefreshSkew / time.Millisecond),
		},
		Providers: upstreams,
		Policy:    PolicyConfig{TimeoutMs: 500},
		Env:       EnvConfig{ShellEnv: ShellEnvConfig{TimeoutMs: 15_000}},
		Log:       LogConfig{Level: "info", Format: "text"},
		Usage:     UsageConfig{Enabled: true, RetentionDays: usage.DefaultRetention.Hours() / 24},
	}
}

// FieldError names the config key that is wrong and why.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// InvalidError is every problem Validate found, sorted by key.
type InvalidError struct{ Fields []*FieldError }

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		lines[i] = f.Error()
	}
	return "invalid config:\n  " + strings.Join(lines, "\n  ")
}

// Validate checks the merged config once; every problem names its key.
// The error is an *InvalidError.
func (c *Config) Validate() error {
	var errs []*FieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Gateway.Listen); err != nil {
		bad("gateway.listen", "want host:port, got %q", c.Gateway.Listen)
	}
	for id := range c.Agents.Agents {
		if err := store.ValidAgentID(id); err != nil {
			bad("agents."+id, "not an agent id (%v); agents.<id> holds one agent's settings (attrs), beside agents.default and agents.defaults", err)
		}
	}
	for id, tok := range c.Gateway.Auth.Agents {
		if tok == "" {
			bad("gateway.auth.agents."+id, "empty token (an unset ${VAR} expands to \"\"); give the agent a token or remove the entry")
		}
	}
	if c.Gateway.MaxBodyBytes <= 0 {
		bad("gateway.maxBodyBytes", "must be positive, got %d", c.Gateway.MaxBodyBytes)
	}
	if c.Gateway.BodyBudgetBytes < c.Gateway.MaxBodyBytes {
		bad("gateway.bodyBudgetBytes", "must be at least gateway.maxBodyBytes (%d), got %d", c.Gateway.MaxBodyBytes, c.Gateway.BodyBudgetBytes)
	}
	if c.Gateway.BodyBudgetWaitMs < 0 {
		bad("gateway.bodyBudgetWaitMs", "must be zero or a positive number of milliseconds, got %d", c.Gateway.BodyBudgetWaitMs)
	}
	c.Gateway.Modules.validate(bad)
	sc := c.Gateway.Sessions
	for k, v := range map[string]float64{"maxPerAgent": float64(sc.MaxPerAgent), "idleDays": sc.IdleDays, "maxIdBytes": float64(sc.MaxIDBytes), "maxModelBytes": float64(sc.MaxModelBytes)} {
		if v <= 0 {
			bad("gateway.sessions."+k, "must be positive, got %v", v)
		}
	}
	for k, v := range map[string]int{"connectMs": c.Gateway.Timeouts.ConnectMs, "responseHeaderMs": c.Gateway.Timeouts.ResponseHeaderMs, "idleConnMs": c.Gateway.Timeouts.IdleConnMs, "drainMs": c.Gateway.Timeouts.DrainMs, "bodyReadMs": c.Gateway.Timeouts.BodyReadMs} {
		if v <= 0 {
			bad("gateway.timeouts."+k, "must be a positive number of milliseconds, got %d", v)
		}
	}
	for _, ref := range append([]string{c.Agents.Defaults.Model.Primary}, c.Agents.Defaults.Model.Fallbacks...) {
		if _, _, ok := SplitModelRef(ref); !ok {
			bad("agents.defaults.model", "want provider/model, got %q", ref)
		}
	}
	for ref := range c.Agents.Defaults.Models {
		if _, _, ok := SplitModelRef(ref); !ok {
			bad("agents.defaults.models."+ref, "want provider/model as the key")
		}
	}
	for id, m := range c.Auth.Profiles {
		if !strings.HasPrefix(id, m.Provider+":") {
			bad("auth.profiles."+id+".provider", "profile id must start with %q", m.Provider+":")
		}
		switch m.Mode {
		case "api_key", "token", "oauth":
		default:
			bad("auth.profiles."+id+".mode", "want api_key, token or oauth, got %q", m.Mode)
		}
	}
	if c.Policy.TimeoutMs <= 0 {
		bad("policy.timeoutMs", "must be a positive number of milliseconds, got %d", c.Policy.TimeoutMs)
	}
	cd := c.Auth.Cooldowns
	if cd.FailureWindowHours <= 0 || cd.BillingBackoffHours <= 0 || cd.BillingMaxHours < cd.BillingBackoffHours {
		bad("auth.cooldowns", "hours must be positive and billingMaxHours ≥ billingBackoffHours")
	}
	for name, p := range c.Providers {
		if p.BaseURL == "" {
			bad("providers."+name+".baseUrl", "required for a provider without a default")
		} else if !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
			bad("providers."+name+".baseUrl", "want an http:// or https:// URL, got %q", p.BaseURL)
		}
	}
	if c.Auth.RefreshSkewMs <= 0 {
		bad("auth.refreshSkewMs", "must be a positive number of milliseconds, got %d", c.Auth.RefreshSkewMs)
	}
	for name, p := range c.Providers {
		if p.OAuth.IsZero() {
			continue
		}
		// A built-in module may declare the rest (openai does); what
		// the module declares is checked at login.
		if !slices.Contains(wasm.BuiltinNames(), name) && (p.OAuth.ClientID == "" || p.OAuth.TokenURL == "") {
			bad("providers."+name+".oauth", "clientId and tokenUrl are required (no built-in provider module declares them for %s)", name)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	if c.Usage.RetentionDays <= 0 {
		bad("usage.retentionDays", "must be a positive number of days, got %v", c.Usage.RetentionDays)
	}
	for model, p := range c.Usage.Prices {
		if p.Input < 0 || p.Output < 0 || p.CacheRead < 0 || p.CacheWrite < 0 {
			bad("usage.prices."+model, "prices are US dollars per million tokens and cannot be negative")
		}
	}
	if c.Env.ShellEnv.TimeoutMs <= 0 {
		bad("env.shellEnv.timeoutMs", "must be positive")
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return &InvalidError{Fields: errs}
}

// OAuthClients is every provider's OAuth client: what provider modules
// declare in their info answer (fromModules, may be nil), with the fields
// of providers.<p>.oauth laid over them.
func (c *Config) OAuthClients(fromModules map[string]oauth.Client) map[string]oauth.Client {
	out := map[string]oauth.Client{}
	for name, m := range fromModules {
		out[name] = m
	}
	for name, o := range c.OAuthOverrides() {
		out[name] = out[name].Merge(o)
	}
	return out
}

// OAuthOverrides is providers.<p>.oauth for each provider that sets it.
func (c *Config) OAuthOverrides() map[string]oauth.Client {
	out := map[string]oauth.Client{}
	for name, p := range c.Providers {
		if !p.OAuth.IsZero() {
			out[name] = p.OAuth
		}
	}
	return out
}

// SplitModelRef splits "provider/model" (the model part may itself contain '/').
func SplitModelRef(ref string) (provider, model string, ok bool) {
	provider, model, ok = strings.Cut(ref, "/")
	return provider, model, ok && provider != "" && model != ""
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
