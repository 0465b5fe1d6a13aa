package gateway

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// peekLimit is how much of a failing answer is read to classify it.
const peekLimit = 8 << 10

// failoverTransport is the ReverseProxy's transport: it runs the
// candidate loop and returns only the answer the client should get.
type failoverTransport struct{ s *Server }

func (f failoverTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	rs := stateOf(out.Context())
	if rs == nil {
		return nil, errors.New("gateway: request without state")
	}
	return f.s.attemptAll(out, rs)
}

// candidate is one credential to try. Owner is the agent whose state file
// records what happens to it; empty for environment and config keys.
type candidate struct {
	id    string
	cred  store.Credential
	owner string
	// retried is set on the second try of an OAuth login after an upstream
	// 401 made the gateway refresh it.
	retried bool
}

// attemptAll tries every candidate of every model in the chain.
func (s *Server) attemptAll(out *http.Request, rs *reqState) (*http.Response, error) {
	ctx := out.Context()
	var last *selection
	transport := s.currentTransport()
	for mi, model := range rs.models {
		now := s.now()
		snap := rs.al.snap.Load()
		sel, herr := s.candidates(ctx, rs, snap, model, now)
		if herr != nil {
			return nil, herr
		}
		last = sel
		body := rs.body
		if mi > 0 {
			b, err := rewriteModel(rs.body, model)
			if err != nil {
				break
			}
			body = b
		}
		for c := range sel.all() {
			if len(rs.attempts) > 0 {
				rs.failovers++
				s.metrics.failovers.WithLabelValues(rs.provider).Inc()
			}
			resp, next := s.try(ctx, transport, out, rs, attempt{c: c, model: model, body: body, lastModel: mi == len(rs.models)-1})
			if resp != nil {
				return resp, nil
			}
			if next == nextModel || (sel.strict && next == nextProfile) {
				break
			}
			if next == stop {
				return nil, ctx.Err()
			}
			if next == abort {
				return nil, rs.abort
			}
		}
	}
	var cooling []Attempt
	if last != nil {
		cooling = last.cooling()
	}
	if len(rs.attempts) == 0 && len(cooling) == 0 {
		return nil, s.noCredential(rs, last)
	}
	e := exhausted(rs.provider, rs.model, rs.attempts, cooling, s.now(), rs.rc.RetryWaitMax)
	if last != nil && last.userPin {
		e.Msg += fmt.Sprintf(". Session %s is pinned to %s by /model …@%s (strict: no other profile is tried); send /model default to let the policy choose again", rs.session, last.pin, last.pin)
	}
	return nil, &exhaustedError{httpErr: e}
}

func (s *Server) currentTransport() *http.Transport { return s.transport.Load() }

type next int

const (
	nextProfile next = iota
	nextModel
	stop
	abort // answer rs.abort
)

// attempt is one send of the request: a credential for one model of the
// chain, with the body rewritten for that model.
type attempt struct {
	c         candidate
	model     string
	body      []byte
	lastModel bool // the chain's last model: its model-not-found answer goes to the client
}

// request is a copy of out that carries a's credential and body, and
// where and how to present it, in the context send traces (rs.conn); or
// the error to answer when the credential cannot be presented.
// Edits to its header go through the returned undo (see attemptHeader).
func (s *Server) request(ctx context.Context, out *http.Request, rs *reqState, a attempt) (*http.Request, wasm.HeadersResult, *headerUndo, *HTTPError) {
	h, herr := s.headers(ctx, rs.provider, a.c)
	if herr != nil {
		return nil, h, nil, herr
	}
	first := !rs.lent
	rs.lent = true
	req := rs.attemptRequest(out, first)
	var undo *headerUndo
	req.Header, undo = rs.attemptHeader(out, first)
	applyHeaders(req.Header, h, undo)
	body := a.body
	req.ContentLength = int64(len(body))
	if len(body) > 0 {
		req.Body = rs.bodyReader(body, first)
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else {
		req.Body, req.GetBody = nil, nil
	}
	return req, h, undo, nil
}

// try sends the request as a says. It returns the response the client
// should get, or nil and where to go next.
func (s *Server) try(ctx context.Context, t http.RoundTripper, out *http.Request, rs *reqState, a attempt) (*http.Response, next) {
	c := a.c
	if c.cred.Type == store.TypeOAuth && c.owner != "" {
		fresh, err := s.refresh.Fresh(ctx, c.owner, c.id, c.cred, false)
		if err != nil && !usableDespite(err, fresh, s.now()) {
			s.fail(rs, c, Attempt{Profile: c.id, Model: a.model, Reason: ReasonAuth, Hint: err.Error()}, 0, s.now())
			return nil, nextProfile
		}
		c.cred = fresh
		a.c = c
	}
	req, h, undo, herr := s.request(ctx, out, rs, a)
	if herr != nil {
		rs.abort = herr
		return nil, abort
	}
	s.loginUpstream(ctx, req, rs, c.cred, h, undo)
	att := Attempt{Profile: c.id, Model: a.model}
	if c.owner != "" && !rs.named {
		rs.al.picks.mark(c.id, s.now())
	}
	resp, err := send(t, req, &rs.conn)
	now := s.now()
	if err != nil {
		if ctx.Err() != nil {
			return nil, stop
		}
		att.Reason, att.Hint = ReasonTimeout, upstreamErrText(err)
		s.fail(rs, c, att, 0, now)
		return nil, nextProfile
	}
	att.Status = resp.StatusCode
	s.observe(ctx, rs, c, a.model, resp, now)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return s.redirect(rs, c, att, resp)
	}
	if resp.StatusCode < 400 {
		rs.attempts = append(rs.attempts, att)
		rs.profile, rs.owner = c.id, c.owner
		s.metrics.attempt(rs.provider, "ok")
		s.succeed(rs, c, now)
		return resp, nextProfile
	}
	peek, _ := io.ReadAll(io.LimitReader(resp.Body, peekLimit))
	cl := s.classify(ctx, rs.provider, resp, peek, now)
	att.Reason, att.Hint = cl.Reason, cl.Hint
	if cl.Reason == ReasonCredentialScope && cl.Scope != rs.client.Name {
		// Kept for the one client the provider accepts it from. (When
		// that client itself is refused, the scope cannot help: the
		// credential is disabled as before.)
		att.Scope = cl.Scope
	}
	restore := func() *http.Response {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
		rs.attempts = append(rs.attempts, att)
		rs.profile, rs.owner = c.id, c.owner
		s.metrics.attempt(rs.provider, cmp.Or(cl.Reason, "other"))
		return resp
	}
	switch {
	case cl.Reason == ReasonModelNotFound:
		if a.lastModel {
			return restore(), nextProfile
		}
		resp.Body.Close()
		rs.attempts = append(rs.attempts, att)
		s.metrics.attempt(rs.provider, cl.Reason)
		return nil, nextModel
	case !cl.Failover:
		return restore(), nextProfile // the caller's own mistake: pass it on
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && (c.cred.Refreshable() || c.cred.External != nil) && c.owner != "" && !c.retried {
		// The provider refused the access token before its expiry (revoked,
		// rotated elsewhere): refresh once and try again with the new one.
		fresh, err := s.refresh.Fresh(ctx, c.owner, c.id, c.cred, true)
		if err == nil && fresh.Access != c.cred.Access {
			c.cred, c.retried = fresh, true
			a.c = c
			return s.try(ctx, t, out, rs, a)
		}
		if err != nil {
			att.Hint = err.Error()
		}
	}
	var retry time.Duration
	if cl.RetryAfterMs != nil {
		retry = time.Duration(*cl.RetryAfterMs) * time.Millisecond // clamped by classify
	}
	s.fail(rs, c, att, retry, now)
	return nil, nextProfile
}

// redirect handles a 3xx: neither a success nor a failover, so no state
// changes. One that stays under the provider's base URL is passed on with
// Location made relative to the gateway (the client stays here); one that
// leaves it is answered 502, since the client would follow it carrying its
// gateway token. Both are logged.
func (s *Server) redirect(rs *reqState, c candidate, att Attempt, resp *http.Response) (*http.Response, next) {
	att.Reason = "redirect"
	rs.attempts = append(rs.attempts, att)
	rs.profile, rs.owner = c.id, c.owner
	s.metrics.attempt(rs.provider, "redirect")
	loc, err := resp.Location()
	if err == http.ErrNoLocation {
		return resp, nextProfile // a 304 or a 300 without a target
	}
	if local, ok := gatewayLocation(rs, loc, err); ok {
		resp.Header.Set("Location", local)
		s.log.Info("upstream redirect passed on", "provider", rs.provider, "profile", c.id, "status", resp.StatusCode, "location", local)
		return resp, nextProfile
	}
	resp.Body.Close()
	target := "an unreadable Location"
	if err == nil {
		target = loc.Scheme + "://" + loc.Host
	}
	s.log.Warn("upstream redirected to another host; answered 502", "provider", rs.provider, "profile", c.id, "status", resp.StatusCode, "to", target)
	rs.abort = &HTTPError{Code: http.StatusBadGateway, Type: "upstream_error",
		Msg: fmt.Sprintf("opensoul: %s answered %d redirecting to %s, outside its base URL; the gateway does not pass on redirects that would carry your token elsewhere", rs.provider, resp.StatusCode, target)}
	return nil, abort
}

// gatewayLocation turns a redirect target under the provider's base URL
// into the same path on the gateway (/{provider}/…).
func gatewayLocation(rs *reqState, loc *url.URL, err error) (string, bool) {
	if err != nil || loc.Scheme != rs.base.Scheme || loc.Host != rs.base.Host {
		return "", false
	}
	rest, ok := strings.CutPrefix(loc.EscapedPath(), rs.base.EscapedPath())
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	local := "/" + rs.provider + rest
	if loc.RawQuery != "" {
		local += "?" + loc.RawQuery
	}
	return local, true
}

type readCloser struct {
	io.Reader
	io.Closer
}

// fail records a failed attempt: on the request, in metrics and (for a
// stored profile) in the usage state with the cooldown math.
func (s *Server) fail(rs *reqState, c candidate, att Attempt, retry time.Duration, now time.Time) {
	s.metrics.attempt(rs.provider, att.Reason)
	s.metrics.failures.WithLabelValues(rs.provider, labelID(c.id), clip(att.Reason)).Inc()
	if c.owner != "" && recordsOnProfile(att.Reason) {
		s.live.record(c.owner, stateOp{profile: c.id, reason: att.Reason, model: att.Model, retryAfter: retry, scope: att.Scope, at: now, tag: c.cred.Tag()})
		att.Recovery = Recovery(rs.al.snap.Load().Stats.Get(c.id), att.Model, now)
	}
	rs.attempts = append(rs.attempts, att)
}

// succeed records lastUsed, lastGood and the session's auto pin, skipping
// writes that would change nothing.
func (s *Server) succeed(rs *reqState, c candidate, now time.Time) {
	if c.owner == "" {
		return
	}
	snap := rs.al.snap.Load()
	if !successIsNoop(snap.Stats.Get(c.id), now) {
		s.live.record(c.owner, stateOp{profile: c.id, success: true, at: now})
	}
	if prev := snap.LastGood[rs.provider]; prev != c.id && !rotatedFrom(snap, prev, now) {
		s.live.record(rs.agent, stateOp{profile: c.id, provider: rs.provider, lastGood: true, at: now})
	}
	if !rs.named {
		return // a request without a session rotates: no auto pin
	}
	sess, _ := rs.al.sessions.get(rs.session)
	if sess.AuthProfileOverrideSource != store.PinUser && sess.AuthProfileOverride != c.id {
		s.live.pinSession(rs.agent, rs.al, sessionOp{session: rs.session, profile: c.id, at: now})
	}
}

// rotatedFrom reports whether lastGood may stay prev although another
// profile just served: prev is clean and served within the last second
// too, so the two take turns (rotation without a session), and moving
// lastGood on every request would rewrite the agent's state on each. It
// then moves at most about once a second, as lastUsed is written.
func rotatedFrom(snap *Snapshot, prev string, now time.Time) bool {
	return prev != "" && successIsNoop(snap.Stats.Get(prev), now)
}

// usableDespite reports whether a login whose refresh failed transiently
// may still be used: its access token has not expired yet.
func usableDespite(err error, c store.Credential, now time.Time) bool {
	var re *keep.RefreshError
	return errors.As(err, &re) && !re.Dead && c.Access != "" && (c.Expires == 0 || c.Expires > now.UnixMilli())
}

// headers asks the provider's module how to present c, falling back to
// the built-in rules (see moduleUnavailable for when it does not).
func (s *Server) headers(ctx context.Context, provider string, c candidate) (wasm.HeadersResult, *HTTPError) {
	if s.modules != nil {
		h, err := s.modules.Headers(ctx, provider, wasm.HeadersRequest{Type: c.cred.Type, Secret: c.cred.Secret(), AccountID: c.cred.AccountID})
		if err == nil && (len(h.Set) > 0 || len(h.Remove) > 0) {
			return h, nil
		}
		if err != nil {
			if e := s.moduleUnavailable(provider, err); e != nil {
				return wasm.HeadersResult{}, e
			}
		}
	}
	return BuiltinHeaders(provider, c.cred), nil
}

// classify asks the module to read a failure, falling back to the
// built-in table for anything it leaves unclassified.
func (s *Server) classify(ctx context.Context, provider string, resp *http.Response, peek []byte, now time.Time) wasm.Classification {
	text := peek
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(peek)); err == nil {
			text, _ = io.ReadAll(io.LimitReader(zr, peekLimit))
		}
	}
	builtin := BuiltinClassify(resp.StatusCode, resp.Header, string(text), now)
	if rule, ok := providerOf(provider).ScopedTo(string(text)); ok {
		builtin = wasm.Classification{Failover: true, Reason: ReasonCredentialScope, Hint: rule.Hint, Scope: rule.Client}
	}
	if s.modules == nil {
		return builtin
	}
	lower := make(map[string]string, len(resp.Header))
	for k, v := range resp.Header {
		if len(v) > 0 {
			lower[strings.ToLower(k)] = v[0]
		}
	}
	cl, err := s.modules.Classify(ctx, provider, wasm.ClassifyRequest{Status: resp.StatusCode, Headers: lower, Body: string(text)})
	if err != nil || cl.Reason == "" || cl.Reason == wasm.ReasonUnknown || cl.Reason == wasm.ReasonOK {
		return builtin // the module left it unclassified
	}
	if cl.RetryAfterMs == nil {
		cl.RetryAfterMs = builtin.RetryAfterMs
	}
	if cl.Reason == ReasonCredentialScope && cl.Scope == "" {
		cl.Scope = builtin.Scope // a module of revision < 4; the table knows the answer
	}
	cl.RetryAfterMs = clampRetryMs(cl.RetryAfterMs)
	return cl
}

// candidates asks the policy which profiles may serve model, with the
// environment and config keys as the fallback when no profile can
// (DESIGN §3).
func (s *Server) candidates(ctx context.Context, rs *reqState, snap *Snapshot, model string, now time.Time) (*selection, *HTTPError) {
	sess, known := rs.al.sessions.get(rs.session)
	var pin *policy.Pin
	if id := sess.AuthProfileOverride; id != "" && (rs.named || sess.AuthProfileOverrideSource == store.PinUser) {
		// A request without a session keeps the default session's user
		// pin (/model …@profile) but not its auto pin: it rotates.
		source := cmp.Or(sess.AuthProfileOverrideSource, store.PinAuto)
		c, ok := snap.Profiles[id]
		switch {
		case ok && c.Provider == rs.provider:
			pin = &policy.Pin{Profile: id, Source: source}
		case !ok && source == store.PinUser && strings.HasPrefix(id, rs.provider+":"):
			// A strict pin never falls back to another profile, even when
			// its own has been removed.
			return nil, &HTTPError{Code: http.StatusServiceUnavailable, Type: "no_credential", Msg: fmt.Sprintf(
				"opensoul: session %s is pinned to %s (/model …@%s) but agent %s has no such profile; add it back, or send /model default to clear the pin",
				rs.session, id, id, rs.agent)}
		}
	}
	// The first model's selection and policy input are held with the
	// request; a later model's are allocated.
	sel, into := new(selection), (*policy.Input)(nil)
	if !rs.sel1Used {
		sel, into, rs.sel1Used = &rs.sel1, &rs.in1, true
	}
	env := *s.env.Load()
	r := s.resolver(ctx, rs.rc, env, now)
	in, dec, err := r.Decide(ctx, snap, Query{
		Agent: rs.agent, Session: rs.session, SessionNew: !known, Pin: pin,
		Provider: rs.provider, Model: model, API: rs.api, Stream: rs.stream,
		Client: rs.client, Visit: rs.visit, Into: into,
	}, now)
	if err != nil {
		return nil, &HTTPError{Code: http.StatusInternalServerError, Msg: "opensoul: the credential policy failed; see the gateway log", Err: err}
	}
	*sel = selection{snap: snap, in: in, dec: dec, provider: rs.provider, model: model, now: now}
	sel.userPin = pin != nil && pin.Source == store.PinUser
	if sel.userPin {
		sel.pin = pin.Profile
	}
	sel.strict = dec.Strict || sel.userPin
	if !sel.userPin {
		// The policy's equal-rank candidates are served in turn, least
		// recently used first: a request without a session every time, a
		// new session once (then its auto pin ranks alone).
		sel.picks = &rs.al.picks
	}
	if !sel.userPin {
		// The fallback is looked up only when no profile can serve.
		sel.res, sel.fallback = r, true
	}
	return sel, nil
}

// resolver is the gateway's Resolver for one request: the one the CLI's
// status commands build from the config too (see health.go).
func (s *Server) resolver(ctx context.Context, rc *runtimeConfig, env Env, now time.Time) Resolver {
	r := Resolver{
		Selector:  s.selector,
		Env:       env,
		Order:     rc.Order,
		ConfigKey: rc.configKey,
		APIKey:    rc.apiKey,
		Attrs:     rc.AgentAttrs,
		Limits:    s.limits.Load(),
		Usage:     s.usageFacts(),
	}
	if s.modules != nil {
		r.Verdict = func(id string, c store.Credential) Verdict {
			return s.verdicts.of(ctx, s.modules, id, c, now)
		}
	}
	return r
}

// selection is the policy's answer for one model of one request. Its
// candidates are resolved one at a time as they are tried, and what only
// an error message needs (cooling profiles, why others cannot serve) is
// worked out only when that error happens: a request served by its first
// candidate costs the same however many profiles the agent has.
type selection struct {
	snap     *Snapshot
	in       *policy.Input
	dec      policy.Decision
	provider string
	model    string
	now      time.Time
	userPin  bool
	pin      string // the user's pin, when userPin
	strict   bool
	fallback bool     // try the environment or config key (res.Fallback) when no profile can be
	res      Resolver // the request's, for the fallback
	// picks, when set, picks which of the policy's equal-rank leading
	// candidates goes first (see policy.Decision.Rotate): the least
	// recently used.
	picks *picks
}

// rotate is which of the equal-rank candidates goes first.
func (sel *selection) rotate(equal []string) string {
	return sel.picks.take(equal, sel.now, func(id string) int64 { return sel.snap.Stats.Get(id).LastUsed })
}

// all yields the candidates in order: the policy's profiles that belong to
// the provider (only the pinned one under a user pin), else the fallback.
// With rotate set, the one it picks among the equal-rank leading
// candidates goes first and the rest follow in the policy's order.
func (sel *selection) all() iter.Seq[candidate] {
	return func(yield func(candidate) bool) {
		first := ""
		if eq := sel.dec.Equal(); sel.picks != nil && len(eq) > 1 {
			first = sel.rotate(eq)
		}
		found := false
		try := func(id string) bool {
			c, ok := sel.snap.Profiles[id]
			if !ok || c.Provider != sel.provider || (sel.userPin && id != sel.pin) {
				return true
			}
			found = true
			return yield(candidate{id: id, cred: c, owner: sel.snap.Owner[id]})
		}
		if first != "" && !try(first) {
			return
		}
		for _, id := range sel.dec.Candidates {
			if id != first && !try(id) {
				return
			}
		}
		if !found && sel.fallback {
			if id, cred, ok, _ := sel.res.Fallback(sel.provider, sel.now); ok {
				yield(candidate{id: id, cred: cred})
			}
		}
	}
}

// cooling lists the profiles the policy has cooling, with their recovery.
func (sel *selection) cooling() []Attempt {
	var out []Attempt
	for _, id := range sel.dec.Cooling {
		if sel.userPin && id != sel.pin {
			continue
		}
		u := sel.snap.Stats.Get(id)
		reason := ReasonCooldown
		if u.DisabledUntil > sel.now.UnixMilli() {
			reason = cmp.Or(u.DisabledReason, "disabled")
		}
		out = append(out, Attempt{Profile: id, Model: sel.model, Reason: reason, Recovery: Recovery(u, sel.model, sel.now)})
	}
	return out
}

// unusable says, as "id: why", why each profile that is neither a
// candidate nor cooling cannot serve.
func (sel *selection) unusable() []string {
	listed := make(map[string]bool, len(sel.dec.Candidates)+len(sel.dec.Cooling))
	for _, id := range sel.dec.Candidates {
		listed[id] = true
	}
	for _, id := range sel.dec.Cooling {
		listed[id] = true
	}
	var out []string
	for _, p := range sel.in.ProfileFacts() {
		if r := sel.dec.Reasons[p.ID]; !listed[p.ID] && r != "" {
			out = append(out, p.ID+": "+r)
		}
	}
	return out
}

// noCredential is the 503 for a provider nothing can serve. Waiting does
// not help (a person must add or free a credential), so it is final:
// x-should-retry: false, and clients show it at once.
func (s *Server) noCredential(rs *reqState, last *selection) *HTTPError {
	agentFlag := ""
	if rs.agent != store.DefaultAgent {
		agentFlag = " --agent " + rs.agent
	}
	vars := ""
	for i, ev := range EnvVarsFor(rs.provider) {
		if i > 0 {
			vars += " or "
		}
		vars += ev.Var
	}
	unusable := ""
	if last != nil {
		if u := last.unusable(); len(u) > 0 {
			unusable = " Profiles that cannot serve: " + strings.Join(u, "; ") + "."
		}
	}
	return &HTTPError{Code: http.StatusServiceUnavailable, Type: "no_credential", NoRetry: true, Msg: fmt.Sprintf(
		"opensoul: no credential for %s (agent %s).%s Add one with `opensoul models auth paste-token --provider %s%s` (stored in %s), or set %s",
		rs.provider, rs.agent, unusable, rs.provider, agentFlag, s.store.ProfilesPath(rs.agent), vars)}
}
