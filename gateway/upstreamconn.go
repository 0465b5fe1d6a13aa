package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// PreconnectTimeout bounds the warm-up's wait for upstream connections
// (preconnect): an unreachable or slow upstream holds /readyz back by at
// most this much and is then left for the first request to dial.
const PreconnectTimeout = 2 * time.Second

// preconnects opens, during the warm-up, one connection into the upstream
// transport's pool for each origin (scheme://host) the warmed credentials
// are sent to, so the first request does not pay the TCP (and TLS)
// handshake. Each origin is opened once, in its own goroutine, as the
// warm-up finds it; wait returns when all are done or PreconnectTimeout
// has passed. A nil *preconnects (gateway.preconnect: false) opens nothing.
type preconnects struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelFunc
	t      *http.Transport
	mu     sync.Mutex
	seen   map[string]bool
	wg     sync.WaitGroup
	opened atomic.Int64
}

func (s *Server) newPreconnects(ctx context.Context) *preconnects {
	if s.cfg.Load().NoPreconnect {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, PreconnectTimeout)
	return &preconnects{s: s, ctx: ctx, cancel: cancel, t: s.currentTransport(), seen: map[string]bool{}}
}

// add opens a connection to u's origin unless one was already asked for.
func (p *preconnects) add(u *url.URL) {
	if p == nil || u == nil || u.Host == "" {
		return
	}
	origin := u.Scheme + "://" + u.Host // no user info, path or query
	p.mu.Lock()
	fresh := !p.seen[origin]
	p.seen[origin] = true
	p.mu.Unlock()
	if fresh {
		p.wg.Go(func() { p.open(origin) })
	}
}

// open sends HEAD / to origin through the upstream transport, with no
// credential and nothing of any request's, and reads the answer to its
// end, so the connection goes back to the pool for the first request to
// reuse. What the upstream answers does not matter; a failure is only
// logged (debug): nothing is counted against a credential.
func (p *preconnects) open(origin string) {
	start := time.Now()
	req, err := http.NewRequestWithContext(p.ctx, http.MethodHead, origin+"/", nil)
	if err != nil {
		return
	}
	req.Header.Set("User-Agent", "opensoul-gateway (preconnect)")
	resp, err := p.t.RoundTrip(req)
	if err != nil {
		p.s.log.Debug("upstream preconnect failed", "origin", origin, "err", upstreamErrText(err))
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	p.opened.Add(1)
	p.s.log.Debug("upstream connection opened", "origin", origin, "status", resp.StatusCode,
		"took", time.Since(start).Round(time.Microsecond))
}

// wait waits for every open to finish (each is bounded by
// PreconnectTimeout) and says how many connections were opened.
func (p *preconnects) wait() int64 {
	if p == nil {
		return 0
	}
	p.wg.Wait()
	p.cancel()
	return p.opened.Load()
}

// send sends req through t; req carries c's trace (c.on). When it fails
// on a connection that had been idle in the pool, before any byte of an
// answer came back (the upstream closed the idle connection as the
// request went out, its keep-alive timer), it is sent once more: Go's
// transport resends by itself only what it had not written yet or may
// replay (GET, HEAD, …), not a POST it had written, and the failover loop
// would count the error against the credential. The preconnected
// connection is such a pooled one, and so is every connection after its
// first request. A failure on a new connection, a timeout or a cancelled
// request is not resent.
func send(t http.RoundTripper, req *http.Request, c *connTrace) (*http.Response, error) {
	resp, err := t.RoundTrip(req)
	if err == nil || !c.reused || c.answered || req.Context().Err() != nil || isTimeout(err) {
		return resp, err
	}
	again := new(http.Request)
	*again = *req
	if req.GetBody != nil {
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		again.Body = body
	} else if req.Body != nil && req.Body != http.NoBody {
		return nil, err // cannot be sent twice
	}
	return t.RoundTrip(again)
}

// connTrace records whether a send went out on a pooled connection and
// whether any of an answer came back. A request's attempts share one
// (reqState.conn): each is traced by on, after the previous one's send
// has returned. Only the attempt's own request carries it, not the
// request's context: an OAuth refresh made with that context (which may
// outlive the request) must not fire it.
type connTrace struct {
	trace    httptrace.ClientTrace
	reused   bool
	answered bool
}

// on is ctx with c tracing the next send made with it.
func (c *connTrace) on(ctx context.Context) context.Context {
	c.reused, c.answered = false, false
	if c.trace.GotConn == nil {
		c.trace.GotConn = func(i httptrace.GotConnInfo) { c.reused = i.Reused }
		c.trace.GotFirstResponseByte = func() { c.answered = true }
	}
	return httptrace.WithClientTrace(ctx, &c.trace)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
