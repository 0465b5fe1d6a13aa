// Package chat answers OpenSoul's chat commands — /model, /model list,
// /model status, /model <ref>[@profile], /model default, /new, /reset —
// inside any chat client pointed at the gateway.
//
// The gateway hands every Anthropic Messages, OpenAI Chat Completions and
// OpenAI Responses request to Handler.Intercept before it picks a
// credential. When the user's last turn is a command, the handler changes
// the session in sessions.json, tells the gateway to reread it, and
// answers in the API's own response shape (JSON, or SSE when the request
// streams) so that the official SDKs and chat UIs show the answer like a
// model's reply. No upstream is called for a command.
//
// The package takes what it needs as plain values and function fields
// (Options, Config) so it depends on the gateway's domain types only, never
// on the CLI.
package chat

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	gwusage "github.com/opensoul/opensoul/gateway/usage"
)

// Config is the part of OpenSoul's configuration the commands read.
type Config struct {
	// DefaultModel is agents.defaults.model.primary (provider/model).
	DefaultModel string
	// Fallbacks are agents.defaults.model.fallbacks (provider/model).
	Fallbacks []string
	// Models is agents.defaults.models: provider/model → alias ("" for
	// none). When it is not empty only these models (or their aliases)
	// are accepted by /model; when empty any provider/model is.
	Models map[string]string
	// Providers are the configured providers by name.
	Providers map[string]Provider
	// Order is auth.order from the config (provider → profile ids).
	Order map[string][]string
}

// Provider is one configured provider as the commands show it.
type Provider struct {
	BaseURL   string
	HasAPIKey bool // providers.<p>.apiKey is set; the key itself never comes here
}

// Options are New's dependencies. Store is required.
type Options struct {
	Store  *store.Store
	Config Config
	// Selector is the credential policy; it marks the profile a request
	// would use next. Nil: /model status shows no "next".
	Selector gateway.Selector
	// Env returns the environment credentials (DESIGN §3). Nil: none.
	Env func() gateway.Env
	// Resolver returns the gateway's resolver (gateway.Server.Resolver),
	// so /model status names the credential the gateway would use, module
	// verdicts included. Nil: one built from Selector, Env and Config.
	Resolver func(ctx context.Context, now time.Time) gateway.Resolver
	// Snapshot returns an agent's profiles and usage. Nil: read from Store
	// with gateway.LoadSnapshot.
	Snapshot func(agent string) (*gateway.Snapshot, error)
	// Refresh is called after a command changed an agent's sessions.json so
	// the gateway applies it to the very next request (gateway.Server.Refresh).
	Refresh func(agent string) error
	// Limits returns the latest rate limits the providers reported
	// (gateway/usage Store.Latest), so /model status shows each profile's
	// headroom and reset. Nil: no headroom shown.
	Limits func() []gwusage.Limits
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
}

// Handler answers chat commands. It is safe for concurrent use.
type Handler struct {
	st       *store.Store
	selector gateway.Selector
	env      func() gateway.Env
	resolve  func(ctx context.Context, now time.Time) gateway.Resolver
	snapshot func(agent string) (*gateway.Snapshot, error)
	refresh  func(agent string) error
	limits   func() []gwusage.Limits
	now      func() time.Time
	log      *slog.Logger

	cfg atomic.Pointer[Config]
}

var _ gateway.ChatInterceptor = (*Handler)(nil)

// New builds a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("chat: Store is required")
	}
	h := &Handler{
		st: opts.Store, selector: opts.Selector, env: opts.Env, resolve: opts.Resolver,
		snapshot: opts.Snapshot, refresh: opts.Refresh, limits: opts.Limits, now: opts.Now, log: opts.Logger,
	}
	if h.env == nil {
		h.env = func() gateway.Env { return gateway.Env{} }
	}
	if h.snapshot == nil {
		h.snapshot = func(agent string) (*gateway.Snapshot, error) { return gateway.LoadSnapshot(h.st, agent) }
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.SetConfig(opts.Config)
	return h, nil
}

// resolver is the gateway's resolver, or one built from the handler's
// selector, environment and config.
func (h *Handler) resolver(ctx context.Context, cfg *Config, now time.Time) gateway.Resolver {
	if h.resolve != nil {
		return h.resolve(ctx, now)
	}
	return gateway.Resolver{Selector: h.selector, Env: h.env(), Order: cfg.Order,
		ConfigKey: func(p string) bool { return cfg.Providers[p].HasAPIKey }}
}

// SetConfig replaces the configuration for commands that start after it.
func (h *Handler) SetConfig(c Config) { h.cfg.Store(&c) }

// Intercept answers req when its last user message is a chat command and
// reports whether it did. It never calls an upstream.
func (h *Handler) Intercept(w http.ResponseWriter, r *http.Request, req gateway.ChatRequest) bool {
	shape, ok := shapeOf(req.API)
	if !ok {
		return false
	}
	cmd, ok := typedCommand(shape, req.Body)
	if !ok {
		return false
	}
	reply, err := h.run(r.Context(), req, cmd)
	if err != nil {
		h.log.Warn("chat command failed", "agent", req.Agent, "session", req.Session, "command", cmd.name, "err", err)
		writeFailure(w, shape, "opensoul: the command "+cmd.String()+" failed: "+err.Error())
		return true
	}
	writeReply(w, shape, reply, req, h.now())
	return true
}

// call is one command being answered: the request, the config, and the
// session and snapshot read for it.
type call struct {
	h       *Handler
	ctx     context.Context
	req     gateway.ChatRequest
	cfg     *Config
	now     time.Time
	session store.Session
	known   bool // the session exists in sessions.json
	snap    *gateway.Snapshot
	// headroom is each profile's tightest rate-limit window (/model
	// status only).
	headroom map[string]*gwusage.ProfileHeadroom
}

// run executes cmd and returns the text to answer with.
func (h *Handler) run(ctx context.Context, req gateway.ChatRequest, cmd command) (string, error) {
	c := &call{h: h, ctx: ctx, req: req, cfg: h.cfg.Load(), now: h.now()}
	ss, err := h.st.LoadSessions(req.Agent)
	if err != nil {
		return "", err
	}
	if s := ss.Sessions[req.Session]; s != nil {
		c.session, c.known = *s, true
	}
	if c.snap, err = h.snapshot(req.Agent); err != nil {
		return "", err
	}
	switch cmd.name {
	case cmdNew, cmdReset:
		return c.reset(cmd)
	case cmdModel:
		if cmd.bad != "" {
			return "I don't know the command \"" + cmd.bad + "\".\n\n" + usage, nil
		}
		switch cmd.arg {
		case "":
			return c.renderCurrent(), nil
		case "list":
			return c.renderList(), nil
		case "status":
			return c.renderStatus(), nil
		case "default":
			return c.clearOverride()
		case "help":
			return usage, nil
		}
		return c.setModel(cmd.arg)
	}
	return usage, nil
}

const usage = `Chat commands:
  /model                                 current model and credential, and how to switch
  /model list                            models, aliases and which providers have a credential
  /model status                          full view: every credential, its state, the endpoint
  /model <alias|provider/model>          use that model for the rest of this session
  /model <alias|provider/model>@<profile> … and pin that credential (strict, never rotated)
  /model default                         back to the default model and automatic credentials
  /new, /reset                           start the session afresh`
