package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// gatewayWatchInterval is how often config, .env and policies are checked.
const gatewayWatchInterval = 500 * time.Millisecond

func (a *app) gatewayCmd() *ffcli.Command {
	fs := a.flagSet("gateway")
	a.keyFlag(fs, "listen", "gateway.listen", "`host:port` to listen on: sets gateway.listen for this run (default 127.0.0.1:18789)")
	return leaf(&ffcli.Command{
		Name:       "gateway",
		ShortUsage: "opensoul gateway [--listen ADDR] | gateway install|uninstall|status|restart|logs",
		ShortHelp:  "Run the gateway: one local endpoint for every provider and credential.",
		LongHelp: `Serves /{provider}/... (anthropic, openai, openrouter and configured
providers) with a credential chosen per request by the policies, failing
over to the next credential when a provider says no. Also /healthz,
/readyz and /metrics. /readyz answers 503 until the gateway is ready to
serve without first-request work: the provider modules in use compiled
(in parallel; the compiled code is cached for the next start), every
configured agent's profiles checked and presented by their modules, the
policies evaluated once per model in use (agents.defaults.model), and a
connection open to each upstream those profiles are sent to (a HEAD
without credentials, at most 2 s; gateway.preconnect: false turns it off).

On first run it generates a gateway token, saves it to <state>/.env as
OPENSOUL_GATEWAY_TOKEN and prints how to point the SDKs at the gateway.
A listen address other than loopback needs a configured token. Config,
.env, policy and provider module (.wasm) edits apply without a restart (a
broken edit is refused and the old one kept), and the agents are warmed
again for them as at start. A provider module whose
calls keep hitting the deadline or trapping is skipped for a while (its
provider gets the built-in behaviour; see providers list and doctor).
SIGINT/SIGTERM drain in-flight requests for at most gateway.timeouts.drainMs.

To keep it running in the background, install it as a user service
(systemd on Linux, launchd on macOS): ` + "`opensoul gateway install`" + `, then
status, restart, logs [-f] and uninstall.

Examples:
  opensoul gateway
  opensoul gateway --listen 127.0.0.1:9000
  opensoul gateway install && opensoul gateway status`,
		FlagSet:     fs,
		Subcommands: a.serviceCmds(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("gateway takes no arguments, got %q", args)
				if s := suggest(args[0], []string{"install", "uninstall", "status", "restart", "logs"}); s != "" {
					msg += fmt.Sprintf("; did you mean `opensoul gateway %s`?", s)
				}
				return &exitError{code: 2, err: errors.New(msg)}
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runGateway(ctx, nil)
		},
	})
}

// runGateway serves until ctx ends, then drains. ready, when set, gets the
// bound address once the gateway accepts connections.
func (a *app) runGateway(ctx context.Context, ready func(addr string)) error {
	g, err := a.buildGateway(ctx)
	if err != nil {
		return err
	}
	defer g.close()
	return a.serveGateway(ctx, g, ready)
}

// builtGateway is a gateway wired from one config and not yet serving:
// what buildGateway made and serveGateway runs.
type builtGateway struct {
	listen       string // gateway.listen at start; a change waits for a restart
	tokenCreated bool   // this start generated the gateway token
	log          *slog.Logger
	level        *slog.LevelVar // log.level, which a reload changes
	engine       *policy.Engine
	modules      *wasm.Registry
	host         *wasm.Host
	chat         *chat.Handler
	srv          *gateway.Server
	usage        *usage.Store // nil: usage.enabled is off, or the store did not open
}

// close releases what buildGateway made, the server before the module
// host (closing the host empties the module backoff file).
func (g *builtGateway) close() {
	g.srv.Close()
	if g.usage != nil {
		g.usage.Close() // after the server: the last answers' usage is flushed
	}
	g.host.Close(context.Background())
}

// buildGateway wires the gateway from the config in force: state dir,
// gateway token, logger, policy engine, provider modules, chat commands
// and the server. It listens on nothing.
func (a *app) buildGateway(ctx context.Context) (*builtGateway, error) {
	g := &builtGateway{}
	if err := a.prepareGateway(g); err != nil {
		return nil, err
	}
	g.level = new(slog.LevelVar)
	setLevel(g.level, a.cfg.Log.Level)
	g.log = newLogger(a.stderr, a.cfg.Log.Format, g.level)
	var err error
	if g.engine, err = policy.New(ctx, policy.Options{Dirs: a.policyDirs(), Logger: g.log, Timeout: ms(a.cfg.Policy.TimeoutMs)}); err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	if g.modules, g.host, err = a.providerModules(ctx, g.log); err != nil {
		return nil, err
	}
	inUse := a.providersInUse() // read now: the warm-up runs beside reloads
	g.usage = a.openUsage(g.log)
	g.srv, err = gateway.New(gateway.Options{
		Store: a.st, Config: gatewayConfig(a.cfg, g.listen), Env: a.env, Selector: g.engine,
		Modules: g.modules, Logger: g.log, Usage: usageSink(g.usage),
		Warmup: func(ctx context.Context) { warmProviderModules(ctx, g.modules, inUse, g.log) },
		Chat: func(srv *gateway.Server) (gateway.ChatInterceptor, error) {
			h, err := newChatHandler(a.st, a.cfg, g.engine, g.log, srv, g.usage)
			g.chat = h
			return h, err
		},
	})
	if err != nil {
		if g.usage != nil {
			g.usage.Close()
		}
		g.host.Close(context.Background())
		return nil, err
	}
	return g, nil
}

// prepareGateway makes the state dir and, on loopback, a gateway token
// when none is configured (then the config is loaded again, so that the
// token's source is <state>/.env like on every later start).
func (a *app) prepareGateway(g *builtGateway) error {
	if err := a.load(); err != nil {
		return err
	}
	if err := a.st.EnsureDir(); err != nil {
		return fmt.Errorf("state dir %s: %w", a.st.Dir, err)
	}
	g.listen = a.cfg.Gateway.Listen
	if hasGatewayToken(a.cfg) {
		return nil
	}
	if !isLoopbackAddr(g.listen) {
		return fmt.Errorf("refusing to listen on %s without a gateway token: set gateway.auth.token or %s (`opensoul onboard` generates one), or listen on 127.0.0.1", g.listen, envGatewayToken)
	}
	var err error
	if _, g.tokenCreated, err = a.ensureGatewayToken(); err != nil || !g.tokenCreated {
		return err
	}
	l, err := loadConfig(a.configSource())
	if err != nil {
		return err
	}
	a.use(l)
	return nil
}

// newChatHandler answers chat commands (/model, /status) with the
// server's live view: its environment, snapshots and resolver.
func newChatHandler(st *store.Store, c Config, engine *policy.Engine, log *slog.Logger, srv *gateway.Server, us *usage.Store) (*chat.Handler, error) {
	opts := chat.Options{
		Store: st, Config: chatConfig(c), Selector: engine, Logger: log,
		Env: srv.Env, Snapshot: srv.Snapshot, Refresh: srv.Refresh, Resolver: srv.Resolver,
	}
	if us != nil {
		opts.Limits = us.Latest // what this gateway saw; /model status shows the headroom
	}
	return chat.New(opts)
}

// serveGateway listens, says where, applies config, policy and module
// edits until ctx ends, then drains.
func (a *app) serveGateway(ctx context.Context, g *builtGateway, ready func(addr string)) error {
	ln, err := net.Listen("tcp", g.listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("gateway.listen %s: the address is in use (another gateway already running? check with: curl -s http://%s/healthz); stop it, or pick a free port with --listen 127.0.0.1:PORT or gateway.listen", g.listen, g.listen)
		}
		return fmt.Errorf("gateway.listen %s: %w", g.listen, err)
	}
	hs := &http.Server{Handler: g.srv, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	run := a.announce(g, ln.Addr().String())
	defer removeRunInfo(a.st.Dir, run.PID)
	if ready != nil {
		ready(ln.Addr().String())
	}
	w := newGatewayWatcher(a, g, run)
	tick := time.NewTicker(gatewayWatchInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-served:
			return fmt.Errorf("gateway: %w", err)
		case <-tick.C:
			w.check(ctx)
			continue
		case <-ctx.Done():
		}
		break
	}
	a.drain(g, hs)
	return nil
}

// announce writes the run file and prints and logs where the gateway is.
func (a *app) announce(g *builtGateway, addr string) runInfo {
	run := runInfo{PID: os.Getpid(), Binary: thisBinary(), Listen: g.listen, Addr: addr, Config: a.cfgFile, Started: time.Now().UTC()}
	if err := writeRunInfo(a.st.Dir, run); err != nil {
		g.log.Warn("cannot write the run file; `opensoul gateway status` will know less", "file", runInfoPath(a.st.Dir), "err", err)
	}
	a.printGatewayBanner(addr, g.tokenCreated)
	g.log.Info("gateway listening", "addr", addr, "state", a.st.Dir, "config", a.cfgFile)
	return run
}

// drain lets in-flight requests finish for at most gateway.timeouts.drainMs.
func (a *app) drain(g *builtGateway, hs *http.Server) {
	drain := ms(a.cfg.Gateway.Timeouts.DrainMs)
	g.log.Info("draining", "timeout", drain)
	g.srv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		g.log.Warn("drain timed out; closing the remaining connections", "err", err)
		hs.Close()
	}
	g.srv.Close()
	g.log.Info("gateway stopped")
}

// openUsage opens the usage store (usage.enabled); a store that cannot be
// opened is logged and the gateway runs without it.
func (a *app) openUsage(log *slog.Logger) *usage.Store {
	if !a.cfg.Usage.Enabled {
		return nil
	}
	us, err := usage.Open(usagePath(a.st.Dir), usage.Options{
		Retention: hours(24 * a.cfg.Usage.RetentionDays),
		Prices:    usage.Prices(a.cfg.Usage.Prices).WithDefaults(),
		Logger:    log,
		Owner:     gateway.CredentialOwner(a.st), // for a store written before rows named it
	})
	if err != nil {
		log.Warn("usage is not recorded", "err", err)
		return nil
	}
	return us
}

// usageSink is us as a gateway.UsageSink, nil (not a nil *Store) without one.
func usageSink(us *usage.Store) gateway.UsageSink {
	if us == nil {
		return nil
	}
	return us
}

func usagePath(stateDir string) string { return filepath.Join(stateDir, "usage.db") }

// hasGatewayToken says whether c puts any non-empty token in force.
func hasGatewayToken(c Config) bool {
	if c.Gateway.Auth.Token != "" {
		return true
	}
	for _, tok := range c.Gateway.Auth.Agents {
		if tok != "" {
			return true
		}
	}
	return false
}

// isLoopbackAddr says whether the listen address host:port reaches
// loopback only; an empty host ("":port) listens everywhere.
func isLoopbackAddr(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	return err == nil && isLoopbackHost(host)
}

// thisBinary is the running executable's absolute path, symlinks
// resolved; "" when the OS cannot say.
func thisBinary() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printGatewayBanner tells the user how to point the SDKs at the gateway.
// It names where the token is, never the token itself.
func (a *app) printGatewayBanner(addr string, tokenCreated bool) {
	base := "http://" + addr
	envFile := filepath.Join(a.st.Dir, ".env")
	fmt.Fprintf(a.stdout, "OpenSoul gateway on %s (state %s)\n", base, a.st.Dir)
	if tokenCreated {
		fmt.Fprintf(a.stdout, "Generated a gateway token and saved it to %s as %s.\n", envFile, envGatewayToken)
	}
	token := `"$` + envGatewayToken + `"`
	if a.cfg.Gateway.Auth.Token == "" {
		token = "<an agent token from gateway.auth.agents>"
	}
	fmt.Fprintf(a.stdout, `
Point your agents at it:
  set -a; . %s; set +a        # loads %s
  export ANTHROPIC_BASE_URL=%s/anthropic
  export ANTHROPIC_AUTH_TOKEN=%s     # Claude Code and the Anthropic SDKs send it as a Bearer token
  OPENAI_BASE_URL=%s/openai/v1 OPENAI_API_KEY=%s your-openai-client
Never export the gateway token as a provider key (ANTHROPIC_API_KEY, OPENAI_API_KEY):
the gateway ignores such a value and warns.
Headers: x-opensoul-agent picks the agent, x-opensoul-session the session.
The exact setup for each client (Codex and OpenClaw need a config entry):
  opensoul connect %s
`, envFile, envGatewayToken, base, token, base, token, connectClients())
}

// newLogger logs in format (text or json) at level, which a running
// gateway changes when log.level does.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// setLevel sets v to the config's log.level (validated: debug, info, warn
// or error).
func setLevel(v *slog.LevelVar, name string) {
	l := slog.LevelInfo
	l.UnmarshalText([]byte(name))
	v.Set(l)
}

// policyDirs are policy.dirs, else <state>/policies.
func (a *app) policyDirs() []string { return a.policyDirsOf(a.cfg) }

func (a *app) policyDirsOf(c Config) []string {
	if len(c.Policy.Dirs) > 0 {
		return c.Policy.Dirs
	}
	return []string{filepath.Join(a.st.Dir, "policies")}
}

// providerModules knows the built-in modules, <state>/providers/*.wasm and
// providers.<p>.module. A module that fails is logged and its provider
// reports the failure on use; the other providers keep working.
func (a *app) providerModules(ctx context.Context, log *slog.Logger) (*wasm.Registry, *wasm.Host, error) {
	host, err := wasm.NewHost(ctx, a.cfg.Gateway.Modules.hostOptions(wasm.Options{Logger: log, BackoffFile: a.backoffFile()}))
	if err != nil {
		return nil, nil, fmt.Errorf("provider modules: %w", err)
	}
	paths := a.modulePaths()
	reg, errs := wasm.NewRegistry(ctx, host, paths)
	// User modules are loaded now so that a broken one is reported at
	// start; built-in ones for the providers in use by the gateway's warmup
	// (warmModules), others when their provider is first used, so that a
	// module costs memory only for a provider in use.
	if len(paths) > 0 {
		errs = append(errs, reg.Load(ctx, slices.Sorted(maps.Keys(paths))...)...)
	}
	for _, err := range errs {
		log.Error("provider module unusable; its provider uses the generic behaviour", "err", err)
	}
	debug.FreeOSMemory() // compilation garbage goes back to the OS
	return reg, host, nil
}

// warmProviderModules compiles, in parallel, the modules of every provider in use:
// configured, named by the default models, holding a stored profile of the
// main agent, or with an environment credential. /readyz stays 503 until
// it is done (gateway.Options.Warmup), so no request waits for a compile.
// Compiled code is kept in the shared module cache dir; wazero writes each
// entry to a temp file, syncs and renames it, so gateways started at once
// share it safely.
func warmProviderModules(ctx context.Context, reg *wasm.Registry, providers []string, log *slog.Logger) {
	start := time.Now()
	errs := reg.Load(ctx, providers...)
	if ctx.Err() != nil {
		// Stopped while compiling: the gateway is going away, so an
		// unfinished compile says nothing about the module.
		log.Info("provider modules not loaded: the gateway is stopping", "providers", providers)
		return
	}
	for _, err := range errs {
		log.Error("provider module unusable; its provider uses the generic behaviour", "err", err)
	}
	debug.FreeOSMemory() // compilation garbage goes back to the OS
	log.Info("provider modules ready", "providers", providers, "took", time.Since(start).Round(time.Millisecond))
}

// providersInUse lists, sorted, the providers the gateway can expect
// requests for.
func (a *app) providersInUse() []string {
	seen := map[string]bool{}
	for name := range a.cfg.Providers {
		seen[name] = true
	}
	for _, ref := range append([]string{a.cfg.Agents.Defaults.Model.Primary}, a.cfg.Agents.Defaults.Model.Fallbacks...) {
		if p, _, ok := strings.Cut(ref, "/"); ok && p != "" {
			seen[p] = true
		}
	}
	if eff, err := a.st.LoadEffective(store.DefaultAgent); err == nil {
		for _, c := range eff.Profiles {
			if c.Provider != "" {
				seen[c.Provider] = true
			}
		}
	}
	for _, p := range []string{"anthropic", "openai", "google", "openrouter"} {
		if _, _, ok := a.env.Credential(p); ok {
			seen[p] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// gatewayConfig takes the gateway's part of the config as plain values.
// listen is the address in effect (a changed gateway.listen waits for a
// restart): beyond loopback, the gateway refuses a config without a token.
func gatewayConfig(c Config, listen string) gateway.Config {
	g := gateway.Config{
		Token:                 c.Gateway.Auth.Token,
		AgentTokens:           c.Gateway.Auth.Agents,
		Exposed:               !isLoopbackAddr(listen),
		DefaultAgent:          c.Agents.Default,
		MaxBodyBytes:          c.Gateway.MaxBodyBytes,
		BodyBudgetBytes:       c.Gateway.BodyBudgetBytes,
		BodyBudgetWait:        ms(max(c.Gateway.BodyBudgetWaitMs, 1)),
		BodyReadTimeout:       ms(c.Gateway.Timeouts.BodyReadMs),
		ConnectTimeout:        ms(c.Gateway.Timeouts.ConnectMs),
		ResponseHeaderTimeout: ms(c.Gateway.Timeouts.ResponseHeaderMs),
		IdleConnTimeout:       ms(c.Gateway.Timeouts.IdleConnMs),
		NoPreconnect:          !c.Gateway.Preconnect,
		Providers:             map[string]gateway.Upstream{},
		Order:                 c.Auth.Order,
		Cooldowns: gateway.Cooldowns{
			FailureWindow:  hours(c.Auth.Cooldowns.FailureWindowHours),
			BillingBackoff: hours(c.Auth.Cooldowns.BillingBackoffHours),
			BillingMax:     hours(c.Auth.Cooldowns.BillingMaxHours),
		},
		Primary:        c.Agents.Defaults.Model.Primary,
		Fallbacks:      c.Agents.Defaults.Model.Fallbacks,
		SessionHeaders: c.Gateway.SessionHeaders,
		AgentAttrs:     c.Agents.AgentAttrs(),
		RetryWaitMax:   ms(c.Gateway.RetryWaitMaxMs),
		OAuth:          c.OAuthOverrides(),
		RefreshSkew:    ms(c.Auth.RefreshSkewMs),
	}
	for name, p := range c.Providers {
		g.Providers[name] = gateway.Upstream{BaseURL: p.BaseURL, APIKey: p.APIKey}
	}
	return g
}

// sessionLimits are gateway.sessions for the store, which applies them on
// every write of sessions.json.
func sessionLimits(c Config) store.SessionLimits {
	s := c.Gateway.Sessions
	return store.SessionLimits{MaxPerAgent: s.MaxPerAgent, Idle: hours(24 * s.IdleDays), MaxIDBytes: s.MaxIDBytes, MaxModelBytes: s.MaxModelBytes}
}

func hours(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }

// chatConfig takes what the chat commands show from the config.
func chatConfig(c Config) chat.Config {
	cc := chat.Config{
		DefaultModel: c.Agents.Defaults.Model.Primary,
		Fallbacks:    c.Agents.Defaults.Model.Fallbacks,
		Models:       map[string]string{},
		Providers:    map[string]chat.Provider{},
		Order:        c.Auth.Order,
	}
	for ref, m := range c.Agents.Defaults.Models {
		cc.Models[ref] = m.Alias
	}
	for name, p := range c.Providers {
		cc.Providers[name] = chat.Provider{BaseURL: p.BaseURL, HasAPIKey: p.APIKey != ""}
	}
	return cc
}
