package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// connUpstream is an Anthropic-format upstream that numbers its
// connections and records which request came over which. drop, when it
// says so, closes the connection under a request without answering it.
type connUpstream struct {
	*httptest.Server
	conns atomic.Int64
	drop  func(r *http.Request, conn int64) bool

	mu  sync.Mutex
	got []connSeen
}

type connSeen struct {
	conn   int64
	method string
	path   string
	header http.Header
	body   string
}

type connKey struct{}

func newConnUpstream(t *testing.T, drop func(*http.Request, int64) bool) *connUpstream {
	u := &connUpstream{drop: drop}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, u.conns.Add(1))
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *connUpstream) serve(w http.ResponseWriter, r *http.Request) {
	conn := r.Context().Value(connKey{}).(int64)
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.got = append(u.got, connSeen{conn: conn, method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: string(body)})
	u.mu.Unlock()
	if u.drop != nil && u.drop(r, conn) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, 200, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}`, nil)
}

func (u *connUpstream) requests() []connSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]connSeen(nil), u.got...)
}

// warmFixture is a gateway whose anthropic upstream is up, with keyA as
// main's profile, warmed as the CLI does (Options.Warmup set), and ready.
func warmFixture(t *testing.T, up string, opts ...func(*gateway.Config)) *fixture {
	t.Helper()
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		o.Config.Providers = map[string]gateway.Upstream{"anthropic": {BaseURL: up}, "openai": o.Config.Providers["openai"]}
		for _, fn := range opts {
			fn(&o.Config)
		}
		o.Warmup = func(context.Context) {}
	}, func(f *fixture, _ *gateway.Options) {
		// Written before New returns, so the warm-up finds the profile.
		f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	})
	waitFor(t, "readyz", func() bool {
		resp, _ := f.do("GET", "/readyz", "", nil)
		return resp.StatusCode == 200
	})
	return f
}

// TestPreconnect: before /readyz turns green the gateway has opened a
// connection to the upstream its credential goes to, with a HEAD that
// carries no credential; the first request then goes over that
// connection instead of dialing. An upstream without credentials gets
// nothing.
func TestPreconnect(t *testing.T) {
	t.Parallel()
	up := newConnUpstream(t, nil)
	f := warmFixture(t, up.URL)
	got := up.requests()
	if len(got) != 1 || got[0].method != http.MethodHead || got[0].path != "/" {
		t.Fatalf("before ready the upstream saw %+v; want one HEAD /", got)
	}
	for name, vals := range got[0].header {
		for _, v := range vals {
			if strings.Contains(v, "SECRETKEY") || strings.Contains(v, gatewayToken) {
				t.Errorf("the preconnect sent a secret in %s", name)
			}
		}
		if k := http.CanonicalHeaderKey(name); k == "Authorization" || k == "X-Api-Key" {
			t.Errorf("the preconnect sent %s", name)
		}
	}
	if n := len(f.openai.requests()); n != 0 {
		t.Errorf("openai, with no credential, got %d requests", n)
	}
	if !strings.Contains(f.logs.String(), `"connections":1`) {
		t.Errorf("the agents-warmed log line does not count the connection:\n%s", f.logs.String())
	}
	if resp, body := f.messages("claude-sonnet-5", nil); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	got = up.requests()
	if len(got) != 2 || got[1].conn != got[0].conn || up.conns.Load() != 1 {
		t.Errorf("the first request came over connection %d of %d; want the preconnected one (1)", got[len(got)-1].conn, up.conns.Load())
	}
}

// TestPreconnectOff: gateway.preconnect: false opens nothing.
func TestPreconnectOff(t *testing.T) {
	t.Parallel()
	up := newConnUpstream(t, nil)
	warmFixture(t, up.URL, func(c *gateway.Config) { c.NoPreconnect = true })
	if got := up.requests(); len(got) != 0 || up.conns.Load() != 0 {
		t.Fatalf("with preconnect off the upstream saw %d connections, %+v", up.conns.Load(), got)
	}
}

// TestPreconnectUnanswered: an upstream that accepts and never answers
// holds /readyz back for at most gateway.PreconnectTimeout, and the
// credential is not blamed for it.
func TestPreconnectUnanswered(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	f := warmFixture(t, "http://"+ln.Addr().String())
	if !strings.Contains(f.logs.String(), "upstream preconnect failed") || !strings.Contains(f.logs.String(), `"connections":0`) {
		t.Errorf("no debug line for the failed preconnect:\n%s", f.logs.String())
	}
	if u := f.state("main").UsageStats["anthropic:a"]; u != nil && (u.ErrorCount != 0 || u.CooldownUntil != 0) {
		t.Errorf("the preconnect counted against the credential: %+v", u)
	}
}

// TestClosedPooledConnectionResent: the upstream closes the pooled
// (preconnected) connection as the first request arrives, without
// answering, as when its keep-alive timer fires just then. Go's transport
// does not resend a POST it had written; the gateway sends it once more
// on a new connection, the client gets the answer, and the credential is
// not blamed.
func TestClosedPooledConnectionResent(t *testing.T) {
	t.Parallel()
	up := newConnUpstream(t, func(r *http.Request, conn int64) bool { return r.Method == http.MethodPost && conn == 1 })
	f := warmFixture(t, up.URL)
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-attempts") != "1" {
		t.Fatalf("first request: %d attempts %q: %s", resp.StatusCode, resp.Header.Get("x-opensoul-attempts"), body)
	}
	got := up.requests()
	if len(got) != 3 || got[1].conn != 1 || got[2].conn != 2 || got[2].body != got[1].body || got[2].header.Get("X-Api-Key") != keyA {
		t.Fatalf("want HEAD and the POST on the preconnected connection, then the same POST on a new one; got %d requests", len(got))
	}
	if u := f.state("main").UsageStats["anthropic:a"]; u == nil || u.ErrorCount != 0 || u.CooldownUntil != 0 || len(u.FailureCounts) != 0 {
		t.Errorf("the closed connection counted against the credential: %+v", u)
	}
}

// TestClosedNewConnectionNotResent: a request the upstream hangs up on
// over a connection dialed for it is not sent again by the gateway on the
// same credential (the upstream may dislike the request itself); it
// counts as a failure as before.
func TestClosedNewConnectionNotResent(t *testing.T) {
	t.Parallel()
	up := newConnUpstream(t, func(r *http.Request, _ int64) bool { return r.Method == http.MethodPost })
	f := warmFixture(t, up.URL, func(c *gateway.Config) { c.NoPreconnect = true })
	if resp, _ := f.messages("claude-sonnet-5", nil); resp.StatusCode == 200 {
		t.Fatal("answered 200 by an upstream that answers nothing")
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("the upstream got the request %d times over new connections; want once", n)
	}
	if u := f.state("main").UsageStats["anthropic:a"]; u == nil || u.ErrorCount != 1 {
		t.Errorf("the failure was not counted: %+v", u)
	}
}
