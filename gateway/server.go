// Package gateway is OpenSoul's domain: credential profiles, sessions, the
// cooldown math, the failover loop and the HTTP server that fronts every
// model provider.
//
// A request is handled in two halves. The handler authenticates the
// caller, buffers the body once, works out the agent, session and model,
// and hands the request to an httputil.ReverseProxy. The proxy's transport
// is the failover loop: it asks the policy for candidates, presents each
// credential in turn, reads a failing answer far enough to classify it,
// and only ever passes the final answer on, so nothing reaches the client
// before the gateway has decided. State the loop needs lives in memory
// (see live) and is written back to the store in batches.
package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// Config is the gateway's part of OpenSoul's configuration, as plain
// values. The CLI builds it from the typed config.
type Config struct {
	// Token opens every agent; AgentTokens[id] opens only agent id (an
	// empty one opens nothing). With neither set the gateway is open, which
	// only a loopback-only listener allows.
	Token        string
	AgentTokens  map[string]string
	DefaultAgent string // "main" when empty
	// Exposed says the listener is reachable from beyond loopback. Then a
	// non-empty token must be in force (New and SetConfig refuse a config
	// without one) and /metrics asks for a token too.
	Exposed bool

	MaxBodyBytes          int64
	BodyBudgetBytes       int64         // all bodies held at once; 0: 128 MiB
	BodyBudgetWait        time.Duration // a body over the budget waits this long, then 503; 0: 2s
	BodyReadTimeout       time.Duration // a body must arrive within this; 0: 60s
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	// NoPreconnect (config gateway.preconnect: false) keeps the warm-up
	// from opening a connection to each upstream its credentials are sent
	// to before /readyz turns green (upstreamconn.go).
	NoPreconnect bool

	Providers map[string]Upstream // by provider name
	Order     map[string][]string // auth.order from config
	Cooldowns Cooldowns
	// Fallbacks are agents.defaults.model.fallbacks as provider/model refs;
	// those of a request's provider are tried when it is exhausted.
	Fallbacks []string
	// Primary is agents.defaults.model.primary (provider/model): with
	// Fallbacks, the models the warm-up decides for (warm.go).
	Primary string
	// RetryWaitMax is the longest recovery the gateway asks clients to wait
	// for (429 + Retry-After); beyond it, or with every candidate disabled,
	// the answer is final (x-should-retry: false). 0: DefaultRetryWaitMax.
	RetryWaitMax time.Duration
	// SessionHeaders name the session when x-opensoul-session is absent,
	// first present wins. Nil: DefaultSessionHeaders; empty: none.
	SessionHeaders []string
	// AgentAttrs are each agent's free-form attributes (config
	// agents.<id>.attrs), given to the policy as input.agent.attrs.
	AgentAttrs map[string]map[string]string

	// OAuth is providers.<p>.oauth from config: each field overrides what
	// the provider's module declares in its info answer (wasm/ABI.md),
	// and it supplies a client for a provider whose module declares none.
	// The result refreshes logins and sends them to their own base URL
	// with their headers.
	OAuth map[string]oauth.Client
	// RefreshSkew is how long before expiry logins are refreshed
	// (keep.DefaultRefreshSkew when zero).
	RefreshSkew time.Duration
}

// UsageSink receives what each answer served by a credential spent and
// the limits providers report (gateway/usage). Record is called on the
// request's goroutine when the answer's body is finished with, Limits
// when an answer (a failing one too) carries rate-limit headers its
// provider module reads; neither may block.
type UsageSink interface {
	Record(usage.Record)
	Limits(usage.Limits)
}

// UsageFacts is a UsageSink that also keeps the policy's usage facts
// (*usage.Store does). Facts is called for every request, so it must be
// cheap (the store's is an atomic load).
type UsageFacts interface {
	Facts() *usage.Facts
}

// Upstream is where a provider's requests go and its config API key.
type Upstream struct {
	BaseURL string
	APIKey  string // providers.<p>.apiKey: the last-resort credential
}

// ChatInterceptor may answer a request itself (chat commands such as
// /model) before any upstream is called. It returns true when it wrote
// the response.
type ChatInterceptor interface {
	Intercept(w http.ResponseWriter, r *http.Request, req ChatRequest) bool
}

// ChatRequest is what an interceptor gets: who is asking and the body.
type ChatRequest struct {
	Agent, Session string
	SessionSet     bool // the caller named the session
	Provider, API  string
	Model          string
	Stream         bool
	Body           []byte
	// Client is the client that sent the command (gateway/client.go), so
	// /model status answers for that client (a profile may be scoped to it).
	Client policy.ClientFacts
}

// Options are New's dependencies. Store, Selector and Logger are required.
type Options struct {
	Store    *store.Store
	Config   Config
	Env      Env
	Selector Selector
	Modules  Modules // nil: built-in headers and classification
	// Chat builds the chat-command interceptor for the server it will
	// serve in (so it may use the server's live view); New calls it once,
	// before anything runs. Nil: no chat commands.
	Chat   func(*Server) (ChatInterceptor, error)
	Usage  UsageSink // nil: token usage is not metered
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	// PollInterval is how often state files are checked and what was
	// learned is written (default 200ms).
	PollInterval time.Duration
	// Warmup, when set, runs in the background from New (compiling the
	// provider modules in use, say); /readyz answers 503 until it has
	// returned and the server has warmed every configured agent: its
	// state loaded, its profiles checked and presented by their modules,
	// and one policy decision made per model worth expecting (warm.go), so
	// the first request does none of that work.
	Warmup func(context.Context)
	// OAuthHTTPClient talks to token endpoints (nil: http.DefaultClient).
	OAuthHTTPClient *http.Client
}

// Server is the gateway's HTTP handler. Create it with New, serve it with
// any http.Server and Close it when done.
type Server struct {
	// Set once by New, read without locks.
	store    *store.Store
	selector Selector
	modules  Modules
	declared keep.Declared // OAuth clients modules declare (oauthclient.go)
	chat     ChatInterceptor
	usage    UsageSink
	observer Observer   // Modules, when it reads rate-limit headers; else nil
	spent    UsageFacts // Usage, when it keeps the policy's usage facts; else nil
	log      *slog.Logger
	now      func() time.Time
	live     *live // agent cache and journal; own locks and goroutines
	verdicts verdicts
	refresh  *keep.Refresher
	metrics  *metrics
	proxy    http.Handler
	stop     context.CancelFunc // ends the warm-up
	warmed   chan struct{}      // closed when Warmup has returned (at once without one)
	closed   sync.Once

	observeGate observeGate // which answers are read for limits; own lock-free state
	limits      limitBook   // the profiles' quantized limits, for the policy

	// Replaced whole while serving (SetConfig, SetEnv, Drain); each request
	// loads them once.
	cfg       atomic.Pointer[runtimeConfig]
	env       atomic.Pointer[Env]
	transport atomic.Pointer[http.Transport] // rebuilt when the timeouts change
	draining  atomic.Bool
	warming   atomic.Bool // Warmup still running: not ready
}

// runtimeConfig is Config prepared for per-request use.
type runtimeConfig struct {
	Config
	tokenSum  [32]byte
	agentSums map[string][32]byte
	bases     map[string]*url.URL
	budget    *bodyBudget
	// configKey and apiKey read Providers for a Resolver, built once
	// here rather than as two closures per request.
	configKey func(provider string) bool
	apiKey    func(provider string) string
	// sessionKeys is SessionHeaders in canonical form (see sessionOf).
	sessionKeys []string
}

// ErrNoToken refuses a config that would leave a listener beyond loopback
// without authentication.
var ErrNoToken = errors.New("gateway.auth: the gateway listens beyond loopback, so it needs a non-empty gateway.auth.token or gateway.auth.agents token (an empty or unset ${VAR} counts as none)")

// isToken says whether v is the gateway token or an agent token.
func (rc *runtimeConfig) isToken(v string) bool {
	sum := sha256.Sum256([]byte(v))
	hit := rc.Token != "" && subtle.ConstantTimeCompare(sum[:], rc.tokenSum[:]) == 1
	for _, want := range rc.agentSums {
		if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			hit = true
		}
	}
	return hit
}

// hasToken says whether any non-empty token is in force.
func (rc *runtimeConfig) hasToken() bool { return rc.Token != "" || len(rc.agentSums) > 0 }

func prepare(c Config) (*runtimeConfig, error) {
	rc := &runtimeConfig{Config: c, agentSums: map[string][32]byte{}, bases: map[string]*url.URL{}}
	if rc.DefaultAgent == "" {
		rc.DefaultAgent = store.DefaultAgent
	}
	if rc.MaxBodyBytes <= 0 {
		rc.MaxBodyBytes = 32 << 20
	}
	if rc.RetryWaitMax <= 0 {
		rc.RetryWaitMax = DefaultRetryWaitMax
	}
	if rc.SessionHeaders == nil {
		rc.SessionHeaders = DefaultSessionHeaders
	}
	rc.BodyBudgetBytes = cmp.Or(max(rc.BodyBudgetBytes, 0), defaultBodyBudget)
	rc.BodyBudgetWait = cmp.Or(max(rc.BodyBudgetWait, 0), defaultBudgetWait)
	rc.BodyReadTimeout = cmp.Or(max(rc.BodyReadTimeout, 0), defaultBodyRead)
	rc.budget = newBodyBudget(rc.BodyBudgetBytes)
	rc.sessionKeys = canonicalKeys(rc.SessionHeaders)
	rc.configKey = func(p string) bool { return rc.Providers[p].APIKey != "" }
	rc.apiKey = func(p string) string { return rc.Providers[p].APIKey }
	if c.Token != "" {
		rc.tokenSum = sha256.Sum256([]byte(c.Token))
	}
	for id, tok := range c.AgentTokens {
		if tok != "" {
			rc.agentSums[id] = sha256.Sum256([]byte(tok))
		}
	}
	if c.Exposed && !rc.hasToken() {
		return nil, ErrNoToken
	}
	for name, up := range c.Providers {
		u, err := url.Parse(up.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("providers.%s.baseUrl: want an http(s) URL, got %q", name, up.BaseURL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		rc.bases[name] = u
	}
	return rc, nil
}

// New builds the gateway and starts its state poller.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Selector == nil || opts.Logger == nil {
		return nil, errors.New("gateway: Store, Selector and Logger are required")
	}
	rc, err := prepare(opts.Config)
	if err != nil {
		return nil, err
	}
	s := &Server{
		store: opts.Store, selector: opts.Selector, modules: opts.Modules, usage: opts.Usage,
		log: opts.Logger, now: opts.Now,
	}
	s.observer, _ = opts.Modules.(Observer)
	s.spent, _ = opts.Usage.(UsageFacts)
	if s.now == nil {
		s.now = time.Now
	}
	s.cfg.Store(rc)
	env := opts.Env
	if env == nil {
		env = Env{}
	}
	s.env.Store(&env)
	s.live = newLive(opts.Store, opts.Logger, s.now, func() Cooldowns { return s.cfg.Load().Cooldowns })
	s.metrics = newMetrics(s.live, s.now)
	if ur, ok := opts.Usage.(UsageReporter); ok {
		s.metrics.reg.MustRegister(usageCollector{ur})
	}
	if sr, ok := opts.Selector.(StatsReporter); ok {
		s.metrics.reg.MustRegister(decisionCounters(sr)...)
	}
	s.refresh = &keep.Refresher{
		Store: opts.Store, HTTPClient: opts.OAuthHTTPClient, Now: s.now, Log: opts.Logger,
		Client: func(provider string) (oauth.Client, bool) {
			return s.oauthClient(context.Background(), provider)
		},
		SkewOf:    func() time.Duration { return s.cfg.Load().RefreshSkew },
		OnRefresh: func(provider, result string) { s.metrics.refreshes.WithLabelValues(provider, result).Inc() },
	}
	s.transport.Store(newTransport(rc.Config))
	s.proxy = s.newProxy()
	if opts.Chat != nil {
		if s.chat, err = opts.Chat(s); err != nil {
			return nil, fmt.Errorf("chat commands: %w", err)
		}
	}
	interval := opts.PollInterval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	s.live.start(interval)
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.warmed = make(chan struct{})
	if opts.Warmup == nil {
		close(s.warmed)
	} else {
		s.warming.Store(true)
		go func() {
			defer close(s.warmed)
			defer s.warming.Store(false)
			s.warm(ctx, opts.Warmup)
		}()
	}
	return s, nil
}

// SetConfig replaces the configuration for requests that start after it.
// The upstream transport is rebuilt only when its timeouts changed.
func (s *Server) SetConfig(c Config) error {
	rc, err := prepare(c)
	if err != nil {
		return err
	}
	if old := s.cfg.Load(); old.budget.size == rc.budget.size {
		rc.budget = old.budget // bodies being held keep counting
	}
	old := s.cfg.Swap(rc)
	if old.ConnectTimeout != c.ConnectTimeout || old.ResponseHeaderTimeout != c.ResponseHeaderTimeout || old.IdleConnTimeout != c.IdleConnTimeout {
		s.transport.Swap(newTransport(c)).CloseIdleConnections()
	}
	return nil
}

// SetEnv replaces the environment credentials (DESIGN §3).
func (s *Server) SetEnv(env Env) { s.env.Store(&env) }

// Refresh rereads an agent's state files now instead of at the next poll;
// a chat command that changed sessions.json calls it.
func (s *Server) Refresh(agent string) error { return s.live.refresh(agent) }

// Snapshot is the agent's current in-memory view: the store plus what
// the gateway learned and has not written yet. Treat it as read-only.
func (s *Server) Snapshot(agent string) (*Snapshot, error) {
	a, err := s.live.agent(agent)
	if err != nil {
		return nil, err
	}
	return a.snap.Load(), nil
}

// Env returns the environment credentials in use.
func (s *Server) Env() Env { return *s.env.Load() }

// Drain makes /readyz fail so that load balancers stop sending traffic;
// the caller then shuts its http.Server down.
func (s *Server) Drain() { s.draining.Store(true) }

// Close stops the poller after writing what was learned. Safe twice.
func (s *Server) Close() error {
	s.closed.Do(func() {
		s.draining.Store(true)
		s.stop()
		s.live.Close()
		// The warm-up uses the module host, which the caller closes once
		// Close returns: a compile still running on a closed host panics.
		<-s.warmed
		s.transport.Load().CloseIdleConnections()
	})
	return nil
}

// ServeHTTP routes /healthz, /readyz, /metrics and /{provider}/{rest}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
		return
	case "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("draining\n"))
			return
		}
		if s.warming.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("starting: compiling provider modules, warming credentials and policies\n"))
			return
		}
		w.Write([]byte("ready\n"))
		return
	case "/metrics":
		s.serveMetrics(w, r)
		return
	}
	s.serveProvider(w, r)
}

// unsafePathRune is a control character or a backslash.
func unsafePathRune(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }

// splitRoute splits the escaped path /{provider}/{rest} into its parts.
// A rest with dot segments (plain or percent-encoded) is refused, so a
// request never leaves the provider's base path, and so is one holding a
// control character or a backslash, plain or encoded (%00, %0d%0a, %5c),
// which upstream servers read in ways of their own.
func splitRoute(escaped string) (provider, rest string, ok bool) {
	p := strings.TrimPrefix(escaped, "/")
	provider, _, found := strings.Cut(p, "/")
	rest = "/"
	if found {
		rest = p[len(provider):] // "/…", a slice of the path, not a new string
	}
	plain, err := url.PathUnescape(rest)
	whole, err2 := url.PathUnescape(p)
	if err != nil || err2 != nil || provider == "" || strings.ContainsFunc(whole, unsafePathRune) {
		return provider, rest, false
	}
	for seg := range strings.SplitSeq(plain, "/") {
		if seg == "." || seg == ".." {
			return provider, rest, false
		}
	}
	return provider, rest, true
}

// callerKeyHeaders are where SDKs put their API key; the caller's gateway
// token may arrive in any of them and none is forwarded.
var callerKeyHeaders = []string{"X-Api-Key", "X-Goog-Api-Key"}

// presentedToken is the caller's gateway token from x-opensoul-token,
// x-api-key (x-goog-api-key) or Authorization: Bearer.
func presentedToken(h http.Header) string {
	if v := h.Get("X-Opensoul-Token"); v != "" {
		return v
	}
	for _, name := range callerKeyHeaders {
		if v := h.Get(name); v != "" {
			return v
		}
	}
	if v := h.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// authenticate checks the caller's token in constant time and returns the
// agent the request is for.
func authenticate(rc *runtimeConfig, h http.Header) (string, *HTTPError) {
	asked := h.Get("X-Opensoul-Agent")
	if asked != "" {
		if err := store.ValidAgentID(asked); err != nil {
			return "", &HTTPError{Code: http.StatusBadRequest, Msg: "opensoul: x-opensoul-agent: " + err.Error()}
		}
	}
	if !rc.hasToken() {
		return cmp.Or(asked, rc.DefaultAgent), nil
	}
	var buf [256]byte // a token up to this long is hashed without a heap copy
	sum := sha256.Sum256(append(buf[:0], presentedToken(h)...))
	if rc.Token != "" && subtle.ConstantTimeCompare(sum[:], rc.tokenSum[:]) == 1 {
		return cmp.Or(asked, rc.DefaultAgent), nil
	}
	matched := ""
	for id, want := range rc.agentSums {
		if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			matched = id
		}
	}
	switch {
	case matched == "":
		return "", &HTTPError{Code: http.StatusUnauthorized, Type: ReasonAuth,
			Msg: "opensoul: missing or wrong gateway token; give your SDK the gateway token (OPENSOUL_GATEWAY_TOKEN) as its API key, or send it as x-opensoul-token"}
	case asked != "" && asked != matched:
		return "", &HTTPError{Code: http.StatusForbidden, Msg: fmt.Sprintf("opensoul: this token opens agent %q only, not %q", matched, asked)}
	}
	return matched, nil
}

// Resolver is the gateway's resolver with its current config, environment
// and module verdicts: what `/model status` and other in-process views use
// to name the credential the next request would get.
func (s *Server) Resolver(ctx context.Context, now time.Time) Resolver {
	return s.resolver(ctx, s.cfg.Load(), *s.env.Load(), now)
}
