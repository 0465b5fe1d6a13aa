package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// DefaultSession is the session of a caller that names none.
const DefaultSession = "default"

// reqState follows one request from the handler through the proxy. The
// handler fills the top half; the failover loop, which runs on the
// handler's goroutine inside ReverseProxy.ServeHTTP, fills the rest.
type reqState struct {
	start    time.Time
	rc       *runtimeConfig
	agent    string
	al       *agentLive
	session  string
	named    bool // the request named its session (else it is DefaultSession, for user pins only)
	method   string
	path     string
	client   policy.ClientFacts
	visit    SessionVisit // the named session's client, start and count
	provider string
	api      string
	model    string // as asked, after the session's model override
	stream   bool
	body     []byte
	held     *heldBody // body's share of the budget, released by finish
	base     *url.URL
	model1   [1]string // models' first array: most requests have no fallback
	outURL   url.URL   // the upstream URL (rewrite)
	ownHdr   [2]string // the answer's x-opensoul-profile and -attempts values
	rest     string    // escaped path below /{provider}
	models   []string

	sel1      selection    // the first model's candidates (candidates)
	in1       policy.Input // and its policy input
	sel1Used  bool
	attempts  []Attempt
	attempt1  [1]Attempt // attempts' backing for the usual one attempt
	profile   string     // the profile that served
	owner     string     // whose store holds it ("": environment or config)
	status    int
	failovers int
	cause     error      // logged, never sent
	abort     *HTTPError // the answer when the loop stops early (a foreign redirect)

	// Held with the state rather than allocated beside it per request.
	heldv heldBody
	ctx   stateCtx

	// The first attempt is lent the outgoing headers (attemptHeader) and
	// the request copy and body reader held here; lent says it has been.
	lent    bool
	hdrUndo headerUndo   // what its header edits replaced
	req1    http.Request // its request (attemptRequest)
	body1   replayBody   // and body (bodyReader)
	conn    connTrace    // how the current attempt was sent (send)
}

type reqStateKey struct{}

// stateCtx is the request's context carrying its reqState (what
// context.WithValue would be, without another allocation).
type stateCtx struct {
	context.Context
	rs *reqState
}

func (c *stateCtx) Value(key any) any {
	if _, ok := key.(reqStateKey); ok {
		return c.rs
	}
	return c.Context.Value(key)
}

func stateOf(ctx context.Context) *reqState {
	rs, _ := ctx.Value(reqStateKey{}).(*reqState)
	return rs
}

// attemptRequest is a copy of out, traced by rs.conn, for an attempt of
// rs to edit: held in rs for the first (most requests have one),
// allocated for any later one, so no request the transport may still be
// reading is reused.
func (rs *reqState) attemptRequest(out *http.Request, first bool) *http.Request {
	ctx := rs.conn.on(out.Context())
	if !first {
		return out.WithContext(ctx)
	}
	rs.req1 = *out.WithContext(ctx) // a copy that stays on the stack
	return &rs.req1
}

// bodyReader reads body for an attempt: the first attempt's reader is
// held in rs, as its request is.
func (rs *reqState) bodyReader(body []byte, first bool) io.ReadCloser {
	if !first {
		return io.NopCloser(bytes.NewReader(body))
	}
	rs.body1.Reset(body)
	return &rs.body1
}

// replayBody is a request body read from the buffered body.
type replayBody struct{ bytes.Reader }

func (*replayBody) Close() error { return nil }

func newTransport(c Config) *http.Transport {
	connect := cmp.Or(c.ConnectTimeout, 10*time.Second)
	d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       cmp.Or(c.IdleConnTimeout, 90*time.Second),
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: cmp.Or(c.ResponseHeaderTimeout, 120*time.Second),
		ExpectContinueTimeout: time.Second,
		// The caller's Accept-Encoding goes upstream untouched and the
		// answer comes back as the provider sent it.
		DisableCompression: true,
		ReadBufferSize:     32 << 10,
		WriteBufferSize:    32 << 10,
	}
}

// NewBufferPool returns a pool of the 32 KiB copy buffers the gateway's
// proxy uses, for another proxy that should copy as it does (the load
// harness's bare proxy).
func NewBufferPool() httputil.BufferPool { return &bufferPool{} }

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func (s *Server) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: failoverTransport{s},
		// ReverseProxy flushes SSE (text/event-stream) and answers of
		// unknown length after every write whatever this says; an answer
		// of known length goes out as its buffers fill and at its end,
		// without a flush (a timer and a write syscall) per answer.
		FlushInterval:  0,
		BufferPool:     &bufferPool{},
		ModifyResponse: s.modifyResponse,
		ErrorHandler:   s.errorHandler,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// rewrite points the outgoing request at the provider's base URL and
// strips the caller's gateway token and OpenSoul's own headers.
func rewrite(pr *httputil.ProxyRequest) {
	rs := stateOf(pr.In.Context())
	u := &rs.outURL
	*u = *rs.base
	u.RawPath = rs.base.EscapedPath() + rs.rest
	if p, err := url.PathUnescape(u.RawPath); err == nil {
		u.Path = p
	}
	u.RawQuery = stripTokens(rs.rc, pr.In.URL.RawQuery)
	pr.Out.URL = u
	pr.Out.Host = ""
	// The server canonicalised the caller's header names, so canonical
	// names are deleted as they are.
	h := pr.Out.Header
	// Answers come back uncompressed so that the secret scrub can read
	// them (see gateway/scrub), at the cost of bandwidth on the upstream leg.
	delete(h, "Accept-Encoding")
	delete(h, "Authorization")
	for _, name := range callerKeyHeaders {
		delete(h, name)
	}
	for name := range h {
		if hasPrefixFold(name, ownHeaderPrefix) {
			delete(h, name)
		}
	}
}

// ownHeaderPrefix: OpenSoul's own request headers (x-opensoul-…), matched
// in any case without a lower-case copy of every header name.
var ownHeaderPrefix = []string{"x-opensoul-"}

// stripTokens drops query parameters whose value is a gateway token
// (SDKs such as Google's send their key as ?key=), keeping the rest of
// the query byte for byte.
func stripTokens(rc *runtimeConfig, raw string) string {
	if raw == "" || !rc.hasToken() {
		return raw
	}
	kept := make([]string, 0, 4)
	dropped := false
	for part := range strings.SplitSeq(raw, "&") {
		_, v, _ := strings.Cut(part, "=")
		if val, err := url.QueryUnescape(v); err == nil && val != "" && rc.isToken(val) {
			dropped = true
			continue
		}
		kept = append(kept, part)
	}
	if !dropped {
		return raw
	}
	return strings.Join(kept, "&")
}

func (s *Server) modifyResponse(resp *http.Response) error {
	rs := stateOf(resp.Request.Context())
	// Set by canonical name without Header.Set's canonicalising.
	rs.ownHdr = [2]string{rs.profile, strconv.Itoa(len(rs.attempts))}
	resp.Header["X-Opensoul-Profile"] = rs.ownHdr[0:1:1]
	resp.Header["X-Opensoul-Attempts"] = rs.ownHdr[1:2:2]
	rs.status = resp.StatusCode
	clampRetryHeaders(resp.Header, s.now())
	s.meter(resp, rs)
	ss := s.secretsFor(rs)
	ss.Headers(resp.Header)
	if resp.Body != nil && resp.Body != http.NoBody && ss.Len() > 0 {
		resp.Body = scrub.NewReader(resp.Body, ss)
	}
	return nil
}

// meter hands the answer's usage to the sink when its body is done: a
// success's body goes through a usage.Meter (which never holds the stream
// back), anything else is recorded at once with no tokens.
func (s *Server) meter(resp *http.Response, rs *reqState) {
	if s.usage == nil {
		return
	}
	rec := usage.Record{Time: rs.start, Agent: rs.agent, Owner: rs.owner, Provider: rs.provider, Profile: rs.profile,
		Client: rs.client.Name, Status: resp.StatusCode}
	if n := len(rs.attempts); n > 0 {
		rec.Model = rs.attempts[n-1].Model
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil || resp.Body == http.NoBody {
		s.usage.Record(rec) // 101 keeps its read-write body: never wrapped
		return
	}
	resp.Body = usage.NewMeter(resp.Body, rs.api, func(u usage.Usage) {
		rec.Usage = u
		s.usage.Record(rec)
	})
}

func (s *Server) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	rs := stateOf(r.Context())
	var he *HTTPError
	var ex *exhaustedError
	switch {
	case errors.As(err, &ex):
		he = ex.httpErr
	case errors.As(err, &he):
	case errors.Is(err, context.Canceled) || r.Context().Err() != nil:
		rs.status, rs.cause = 499, err // the caller went away; nobody to answer
		return
	default:
		he = &HTTPError{Code: http.StatusBadGateway, Msg: "opensoul: upstream failed: " + upstreamErrText(err), Err: err}
	}
	he = finalFor(he, rs.client.Name)
	w.Header().Set("X-Opensoul-Attempts", strconv.Itoa(len(rs.attempts)))
	rs.status, rs.cause = he.Code, err
	writeError(w, rs.provider, he)
}

// upstreamErrText describes a transport error without the URL's query.
func upstreamErrText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return timedOutHint
	}
	return err.Error()
}

// serveProvider is the handler half of a provider request.
func (s *Server) serveProvider(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	rc := s.cfg.Load()
	provider, rest, ok := splitRoute(r.URL.EscapedPath())
	rs := &reqState{start: start, rc: rc, provider: provider, rest: rest, method: r.Method, path: r.URL.Path}
	rs.attempts = rs.attempt1[:0]
	rs.client.Name, rs.client.Version = IdentifyClient(r.Header)
	defer s.finish(r.Context(), rs)
	if _, known := rc.bases[provider]; !known {
		rs.provider = "" // an unknown name stays out of the metrics' labels
	}
	if !ok {
		s.reject(w, rs, &HTTPError{Code: http.StatusBadRequest, Msg: "opensoul: the path must be /{provider}/… without . or .. segments, control characters or backslashes"})
		return
	}
	if rs.base, ok = rc.bases[provider]; !ok {
		s.reject(w, rs, &HTTPError{Code: http.StatusNotFound,
			Msg: fmt.Sprintf("opensoul: no provider %q; use /{provider}/… with a provider from the config (providers.<name>.baseUrl)", provider)})
		return
	}

	if r.Method == http.MethodHead && (rest == "" || rest == "/") {
		// Clients probe the provider root at start (Claude Code sends an
		// unauthenticated HEAD /anthropic): the gateway is there.
		rs.status = http.StatusOK
		w.WriteHeader(http.StatusOK)
		return
	}
	if isWebSocket(r.Header) {
		// Codex opens a WebSocket on …/responses first. 426 is the answer
		// it takes as "no WebSockets here" and falls back to HTTP at once;
		// 404 or 501 cost it seven attempts, about 6.5 s (Codex 0.171.0).
		// Answered before authentication, so the HTTP request that follows
		// gets the real answer to its token.
		s.reject(w, rs, &HTTPError{Code: http.StatusUpgradeRequired, NoRetry: true,
			Msg: "opensoul: the gateway does not speak WebSockets; send the request over HTTP (POST)"})
		return
	}
	agent, herr := authenticate(rc, r.Header)
	if herr != nil {
		s.reject(w, rs, herr)
		return
	}
	rs.agent = agent
	if herr := s.knownAgent(rc, agent); herr != nil {
		s.reject(w, rs, herr)
		return
	}
	prov := providerOf(provider)
	if prov.OutsideAPI(rest) {
		s.reject(w, rs, wrongBaseURL(prov.Provider, r, provider, rest))
		return
	}
	if herr := s.readBody(w, r, rs); herr != nil {
		s.reject(w, rs, herr)
		return
	}
	rs.api = prov.APIOf(rest)
	rs.model, rs.stream = bodyMeta(rs.body)
	rs.session, rs.named = sessionOf(r.Header, rc.sessionKeys)
	if max := s.store.Sessions.Effective().MaxIDBytes; len(rs.session) > max {
		rs.session = ""
		s.reject(w, rs, &HTTPError{Code: http.StatusBadRequest,
			Msg: fmt.Sprintf("opensoul: the session id is over %d bytes (gateway.sessions.maxIdBytes)", max)})
		return
	}
	if !rs.named {
		rs.session = DefaultSession
	}
	if s.chat != nil && rs.api != "" && s.chat.Intercept(w, r, ChatRequest{
		Agent: agent, Session: rs.session, SessionSet: rs.named, Provider: provider, API: rs.api,
		Model: rs.model, Stream: rs.stream, Body: rs.body, Client: rs.client,
	}) {
		rs.status, rs.profile = http.StatusOK, "chat"
		return
	}
	al, err := s.live.agent(agent)
	if err != nil {
		s.reject(w, rs, &HTTPError{Code: http.StatusInternalServerError, Msg: "opensoul: cannot read the agent's state: " + err.Error(), Err: err})
		return
	}
	rs.al = al
	if rs.named {
		rs.visit = al.seen.visit(rs.session, rs.client, start.UnixMilli())
		sess, _ := al.sessions.get(rs.session)
		rs.visit.Started = earliest(sess.CreatedAt, rs.visit.Started)
	}
	if herr := s.applyModelOverride(rs); herr != nil {
		s.reject(w, rs, herr)
		return
	}
	rs.models = appendModelChain(rs.model1[:0], rs.provider, rs.model, rc.Fallbacks)
	s.noteRecentModel(rs, start)
	rs.ctx = stateCtx{Context: r.Context(), rs: rs}
	s.proxy.ServeHTTP(w, r.WithContext(&rs.ctx))
}

// isWebSocket: the request asks to upgrade the connection to a WebSocket.
func isWebSocket(h http.Header) bool {
	return strings.EqualFold(h.Get("Upgrade"), "websocket")
}

// knownAgent accepts the default agent, agents with a token and agents
// with a directory in the state: a request never creates an agent.
func (s *Server) knownAgent(rc *runtimeConfig, agent string) *HTTPError {
	if agent == rc.DefaultAgent || agent == store.DefaultAgent {
		return nil
	}
	if _, ok := rc.AgentTokens[agent]; ok {
		return nil
	}
	if fi, err := os.Stat(s.store.AgentDir(agent)); err == nil && fi.IsDir() {
		return nil
	}
	return &HTTPError{Code: http.StatusForbidden, Msg: fmt.Sprintf(
		"opensoul: unknown agent %q; add it with `opensoul models auth paste-token --provider <provider> --agent %s` (its credentials, inheriting agent %s's) or give it a token under gateway.auth.agents",
		agent, agent, store.DefaultAgent)}
}

func (s *Server) reject(w http.ResponseWriter, rs *reqState, he *HTTPError) {
	rs.status, rs.cause = he.Code, he
	writeError(w, rs.provider, he)
}

// applyModelOverride rewrites the model to the session's override
// (/model), when it is for this request's provider.
func (s *Server) applyModelOverride(rs *reqState) *HTTPError {
	sess, ok := rs.al.sessions.get(rs.session)
	if !ok || sess.ModelOverride == "" || rs.model == "" {
		return nil
	}
	model := sess.ModelOverride
	if p, m, ok := strings.Cut(model, "/"); ok {
		if p != rs.provider {
			return nil // an override for another API leaves this one alone
		}
		model = m
	}
	if model == rs.model {
		return nil
	}
	body, err := rewriteModel(rs.body, model)
	if err != nil {
		return &HTTPError{Code: http.StatusBadRequest, Msg: "opensoul: request body is not a JSON object", Err: err}
	}
	rs.body, rs.model = body, model
	return nil
}

// appendModelChain appends the model asked for, then the configured
// fallbacks of the same provider, to chain (a request's starts in its
// reqState).
func appendModelChain(chain []string, provider, model string, fallbacks []string) []string {
	chain = append(chain, model)
	if model == "" {
		return chain
	}
	for _, ref := range fallbacks {
		p, m, ok := strings.Cut(ref, "/")
		if ok && p == provider && m != "" && m != model {
			chain = append(chain, m)
		}
	}
	return chain
}

// finish writes the request's one log line and its metrics.
func (s *Server) finish(ctx context.Context, rs *reqState) {
	rs.held.release()
	d := s.now().Sub(rs.start)
	s.metrics.observe(rs.provider, rs.status, d)
	level := slog.LevelInfo
	if rs.status >= 500 {
		level = slog.LevelWarn
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	// The record goes to the handler directly: Logger.LogAttrs would also
	// walk the stack for a source position (runtime.Callers) on every
	// request, and no handler here reports one.
	r := slog.NewRecord(time.Now(), level, "request", 0)
	r.AddAttrs(
		slog.String("method", rs.method), slog.String("path", rs.path),
		slog.String("client", clientLabel(rs.client)),
		slog.String("agent", rs.agent), slog.String("session", rs.session),
		slog.String("provider", rs.provider), slog.String("model", rs.model),
		slog.String("profile", rs.profile), slog.Int("attempts", len(rs.attempts)),
		slog.Int("status", rs.status), slog.Duration("latency", d),
		slog.String("reasons", reasonsText(rs.attempts)),
	)
	if rs.cause != nil {
		r.AddAttrs(slog.String("err", rs.cause.Error()))
	}
	_ = s.log.Handler().Handle(ctx, r) // as Logger.LogAttrs: a handler's error is dropped
}

// reasonsText is the log's "reasons": "anthropic:a=rate_limit anthropic:b=ok".
func reasonsText(attempts []Attempt) string {
	if len(attempts) == 1 { // the usual request: one string, not a builder's growth
		return attempts[0].Profile + "=" + cmp.Or(attempts[0].Reason, "ok")
	}
	var b strings.Builder
	for i, a := range attempts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Profile)
		b.WriteByte('=')
		b.WriteString(cmp.Or(a.Reason, "ok"))
	}
	return b.String()
}

// clientLabel is how the log names a client: "claude-code/2.1.332".
func clientLabel(c policy.ClientFacts) string {
	if c.Version == "" {
		return c.Name
	}
	return c.Name + "/" + c.Version
}

// wrongBaseURL answers a wire API path outside the provider's API prefix
// (the AI SDK given …/anthropic posts to /anthropic/messages): 404, naming
// the base URLs that work.
func wrongBaseURL(p providers.Provider, r *http.Request, route, rest string) *HTTPError {
	base := "http://" + r.Host + "/" + route
	return &HTTPError{Code: http.StatusNotFound, Msg: fmt.Sprintf(
		"opensoul: %s%s is not a path of the %s API, so it was not forwarded. Give clients that append %s themselves (the AI SDK, the OpenAI SDKs) "+
			"the base URL %s%s, and clients that append %s%s (the Anthropic SDKs, Claude Code) the base URL %s",
		"/"+route, rest, cmp.Or(p.Title, route), rest, base, p.APIPrefix, p.APIPrefix, rest, base)}
}
