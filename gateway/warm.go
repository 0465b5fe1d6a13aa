package gateway

import (
	"context"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"

	providers "github.com/opensoul/opensoul/gateway/provider"
)

// warm does, before /readyz turns green, the work a first request would
// otherwise do itself: Options.Warmup (the CLI compiles the provider
// modules in use there, in parallel), then for every configured agent in
// parallel (warmAgent) its state loaded, each profile checked and
// presented by its provider's module, and one policy decision per model
// worth expecting. Nothing is sent upstream.
func (s *Server) warm(ctx context.Context, warmup func(context.Context)) {
	if warmup != nil {
		warmup(ctx)
	}
	s.Warm(ctx)
}

// Warm warms every configured agent (warmAgent) and returns when done. New
// does it before /readyz turns green; the CLI's watcher calls it again
// after a config, policy or module reload, whose first requests would
// otherwise evaluate the new policies and ask the new module. It does not
// change /readyz.
func (s *Server) Warm(ctx context.Context) {
	start, agents := time.Now(), s.warmAgents()
	n := warmed{conns: s.newPreconnects(ctx)}
	var wg sync.WaitGroup
	for _, agent := range agents {
		wg.Go(func() { s.warmAgent(ctx, agent, &n) })
	}
	wg.Wait()
	conns := n.conns.wait()
	if ctx.Err() == nil {
		s.log.Info("agents warmed", "agents", agents, "profiles", n.profiles.Load(), "decisions", n.decisions.Load(),
			"connections", conns, "took", time.Since(start).Round(time.Millisecond))
	}
}

// warmed counts what the warm-up did, for its log line, and opens the
// upstream connections its credentials will use (nil: preconnect off).
type warmed struct {
	profiles, decisions atomic.Int64
	conns               *preconnects
}

// warmAgents are the agents a request can be expected for: the default
// agent and every agent with its own gateway token.
func (s *Server) warmAgents() []string {
	rc := s.cfg.Load()
	agents := []string{store.DefaultAgent}
	if rc.DefaultAgent != "" {
		agents = append(agents, rc.DefaultAgent)
	}
	for id := range rc.AgentTokens {
		agents = append(agents, id)
	}
	slices.Sort(agents)
	return slices.Compact(agents)
}

// warmAgent loads an agent's state, has each of its profiles checked and
// presented by its provider's module (filling the modules' answer caches,
// as the agent's first request would), and decides once per model worth
// expecting (warmDecisions).
func (s *Server) warmAgent(ctx context.Context, agent string, n *warmed) {
	a, err := s.live.agent(agent)
	if err != nil {
		return // the first request reports it
	}
	snap, now, rc := a.snap.Load(), s.now(), s.cfg.Load()
	if s.modules == nil {
		for _, c := range snap.Profiles {
			n.conns.add(s.sentTo(ctx, rc, c, wasm.HeadersResult{}))
		}
	} else {
		ids := make(chan string)
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(snap.Profiles)) {
			wg.Go(func() {
				for id := range ids {
					s.warmProfile(ctx, rc, id, snap.Profiles[id], now, n.conns)
					n.profiles.Add(1)
				}
			})
		}
		for id := range snap.Profiles {
			if ctx.Err() != nil {
				break
			}
			ids <- id
		}
		close(ids)
		wg.Wait()
	}
	s.warmDecisions(ctx, agent, a, snap, n)
}

// warmProfile asks the profile's module for its check verdict and, when
// the credential can be sent as it is, for its headers: both answers are cached by
// credential, so the first request to use it asks neither. It has a
// connection opened to where the credential is sent (conns).
func (s *Server) warmProfile(ctx context.Context, rc *runtimeConfig, id string, c store.Credential, now time.Time, conns *preconnects) {
	if ctx.Err() != nil {
		return
	}
	switch s.verdicts.of(ctx, s.modules, id, c, now).Status {
	case StatusInvalid, StatusMissing, StatusExpired: // not sent as it is
		return
	}
	h, _ := s.headers(ctx, c.Provider, candidate{id: id, cred: c})
	conns.add(s.sentTo(ctx, rc, c, h))
}

// sentTo is where c's requests go: a login's own base URL when it has one
// (loginUpstream), else its provider's (nil when neither is known).
func (s *Server) sentTo(ctx context.Context, rc *runtimeConfig, c store.Credential, h wasm.HeadersResult) *url.URL {
	if c.Type == store.TypeOAuth {
		declared, _ := s.moduleOAuth(ctx, c.Provider)
		if base, _ := loginBase(declared, rc.OAuth[c.Provider], h); base != "" {
			if u, err := url.Parse(base); err == nil {
				return u
			}
			return nil
		}
	}
	return rc.bases[c.Provider]
}

// warmDecisions evaluates the policy for the agent once per model worth
// expecting (Models: the configured defaults and fallbacks, models with a
// cooldown, models asked for within RecentWindow, and every other
// provider with a profile), as a request without a session from an
// unidentified client would ask. This runs the policy's first evaluation,
// which costs several times a later one, and fills the decision cache
// for those inputs; it also builds the set of secrets the provider's
// answers are scrubbed of, and has a connection opened for a fallback
// key (env or config). A request whose input differs (another model, client
// or wire API, or with a user policy loaded a new session) is still
// evaluated on its first arrival.
func (s *Server) warmDecisions(ctx context.Context, agent string, a *agentLive, snap *Snapshot, n *warmed) {
	rc, env, now := s.cfg.Load(), *s.env.Load(), s.now()
	r := s.resolver(ctx, rc, env, now)
	_, known := a.sessions.get(DefaultSession)
	for _, ref := range Models(snap, append([]string{rc.Primary}, rc.Fallbacks...), now) {
		if ctx.Err() != nil {
			return
		}
		provider, model, _ := strings.Cut(ref, "/")
		if _, ok := rc.bases[provider]; !ok {
			continue // no route: no request can ask for it
		}
		q := Query{Agent: agent, Session: DefaultSession, SessionNew: !known, Provider: provider, Model: model,
			Client: policy.ClientFacts{Name: ClientUnknown}}
		if apis := providers.For(provider).APIs; len(apis) > 0 {
			q.API = apis[0]
		}
		r.Decide(ctx, snap, q, now) // an error is the first request's to report
		n.decisions.Add(1)
		// The set of secrets its answers are scrubbed of, kept with the
		// snapshot (at 1000 profiles, building it is most of a request).
		s.secretsFor(&reqState{rc: rc, al: a, provider: provider})
		if id, cred, ok, _ := r.Fallback(provider, now); ok {
			if s.modules != nil {
				s.headers(ctx, provider, candidate{id: id, cred: cred})
			}
			n.conns.add(rc.bases[provider])
		}
	}
}
