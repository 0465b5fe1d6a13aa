package gateway

import (
	"net/http"
	"sync"
	"time"
)

// HeaderSession names the session explicitly; it wins over any client's
// own session header.
const HeaderSession = "x-opensoul-session"

// DefaultSessionHeaders are the session headers real clients send, read
// when a request has no x-opensoul-session (checked against captures in
// testdata/clients): Claude Code's, and Codex's session id.
var DefaultSessionHeaders = []string{"x-claude-code-session-id", "session-id"}

// sessionOf names the request's session: x-opensoul-session, else the
// first of the client session headers present. ok is false when the
// request names none.
func sessionOf(h http.Header, clientHeaders []string) (id string, ok bool) {
	if id = h.Get(HeaderSession); id != "" {
		return id, true
	}
	for _, name := range clientHeaders {
		if id = h.Get(name); id != "" {
			return id, true
		}
	}
	return "", false
}

// picks remembers, in memory, when each profile of an agent was last
// handed a request that named no session. The stored lastUsed is written at most once a second
// and only after an answer, so without this every request in that second
// would see the same least-recently-used profile. Values are unix ms made
// strictly increasing, so requests within one millisecond still rotate.
type picks struct {
	mu   sync.Mutex
	last map[string]int64
	seq  int64
}

// mark records that id is being tried now.
func (p *picks) mark(id string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq = max(p.seq+1, now.UnixMilli())
	if p.last == nil {
		p.last = map[string]int64{}
	}
	p.last[id] = p.seq
}

// of is when id was last handed a request by this gateway, 0 for never.
func (p *picks) of(id string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[id]
}
