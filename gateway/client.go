package gateway

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HeaderSession names the session explicitly; it wins over any client's
// own session header.
const HeaderSession = "x-opensoul-session"

var headerSessionKey = http.CanonicalHeaderKey(HeaderSession)

// canonicalKeys is names in the form http.Header keeps them.
func canonicalKeys(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out
}

// DefaultSessionHeaders are the session headers real clients send, read
// when a request has no x-opensoul-session (checked against captures in
// testdata/clients): Claude Code's, and Codex's session id.
var DefaultSessionHeaders = []string{"x-claude-code-session-id", "session-id"}

// sessionOf names the request's session: x-opensoul-session, else the
// first of the client session headers present. ok is false when the
// request names none.
//
// The names are looked up as given: pass them in canonical form
// (canonicalKeys), or each lookup canonicalises into a new string.
func sessionOf(h http.Header, clientHeaders []string) (id string, ok bool) {
	if id = h.Get(headerSessionKey); id != "" {
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
// handed a request that named no session: the gateway's own rotation among
// the policy's equal-rank candidates (policy.Decision.Rotate). It is not
// policy input, so rotating does not change the facts and the decision
// stays cached. Values are unix ms made strictly increasing, so requests
// within one millisecond still rotate.
type picks struct {
	mu   sync.Mutex
	last map[string]int64
	seq  int64
	rot  map[rotationKey]*rotation // long candidate lists seen before, by identity
}

// mark records that id is being tried now.
func (p *picks) mark(id string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.markLocked(id, now)
}

func (p *picks) markLocked(id string, now time.Time) {
	p.seq = max(p.seq+1, now.UnixMilli())
	if p.last == nil {
		p.last = map[string]int64{}
	}
	p.last[id] = p.seq
}

// take picks the least recently used of ids (the policy's equal-rank
// candidates): by the later of its stored lastUsed and this gateway's own
// record, the earliest in ids among equals. It records the pick in the
// same locked step, so concurrent requests take different ones.
func (p *picks) take(ids []string, now time.Time, stored func(id string) int64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	value := func(id string) int64 { return max(p.last[id], stored(id)) }
	r := p.rotationFor(ids)
	if r == nil {
		best := leastRecent(ids, value)
		p.markLocked(best, now)
		return best
	}
	i := r.least(ids, value)
	p.markLocked(ids[i], now)
	r.heap[0].at = p.seq
	r.down(0)
	return ids[i]
}

// A cached decision hands every request the same candidate slice, so a
// long list seen before keeps a heap of its candidates by the last use
// take knew of (each key at most the candidate's value): a pick costs
// O(log n) instead of a pass over every candidate, which at a thousand
// keys of one provider was 5% of a request. The heap's keys never go back
// in time, so a lastUsed written out of order by two concurrent requests
// (or reset in the state file) counts as the later one for this list.
type rotation struct {
	heap []rotationEntry // nil until the list is seen a second time
}

type rotationEntry struct {
	at int64 // the candidate's value as last seen (a lower bound)
	i  int   // its index in the list
}

type rotationKey struct {
	first *string
	n     int
}

const (
	rotateIndexFrom = 32 // shorter lists are searched
	maxRotations    = 16 // lists remembered per agent (decisions are few)
)

// rotationFor returns the heap of a long list seen before, nil when the
// list is short or new (take searches it; a decision evaluated anew each
// time has a new list each time and never pays for a heap).
func (p *picks) rotationFor(ids []string) *rotation {
	if len(ids) < rotateIndexFrom {
		return nil
	}
	k := rotationKey{&ids[0], len(ids)}
	r, seen := p.rot[k]
	if !seen {
		if p.rot == nil || len(p.rot) >= maxRotations {
			p.rot = map[rotationKey]*rotation{}
		}
		p.rot[k] = &rotation{}
		return nil
	}
	return r
}

// least returns the index of the least recently used candidate, building
// the heap on first use: the top's key is brought up to its value until
// it holds, and then it is the least, since no other value is below its
// key.
func (r *rotation) least(ids []string, value func(string) int64) int {
	if r.heap == nil {
		r.heap = make([]rotationEntry, len(ids))
		for i, id := range ids {
			r.heap[i] = rotationEntry{value(id), i}
		}
		for i := len(r.heap)/2 - 1; i >= 0; i-- {
			r.down(i)
		}
	}
	for {
		top := &r.heap[0]
		v := value(ids[top.i])
		if v <= top.at {
			return top.i
		}
		top.at = v
		r.down(0)
	}
}

func (e rotationEntry) before(o rotationEntry) bool {
	return e.at < o.at || e.at == o.at && e.i < o.i
}

func (r *rotation) down(i int) {
	h := r.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if rr := l + 1; rr < len(h) && h[rr].before(h[l]) {
			m = rr
		}
		if !h[m].before(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// leastRecent returns the id of ids with the smallest last(id), the
// earliest in ids among equals ("" for none).
func leastRecent(ids []string, last func(id string) int64) string {
	best, at := "", int64(0)
	for _, id := range ids {
		if t := last(id); best == "" || t < at {
			best, at = id, t
		}
	}
	return best
}

// Client names of ClientFacts (policy.ClientFacts.Name).
const (
	ClientClaudeCode   = "claude-code"
	ClientCodex        = "codex"
	ClientOpenClaw     = "openclaw"
	ClientAnthropicSDK = "anthropic-sdk"
	ClientOpenAISDK    = "openai-sdk"
	ClientLangChain    = "langchain"
	ClientAISDK        = "ai-sdk"
	ClientCurl         = "curl"
	ClientUnknown      = "unknown"
)

// finalStatus overrides, per client, the status of a final answer (one
// with x-should-retry: false) for clients that ignore that header. Codex
// 0.171.0 retries every 5xx and every 4xx but 400 and 429 five times
// (7 s to 25 s) and shows no message for a 429; a 400 it prints at once,
// message included (measured with testdata/clients/realclients.sh and a
// server answering each status). The official SDKs, Claude Code and the
// frameworks on them honour x-should-retry and keep the reason's status.
var finalStatus = map[string]int{ClientCodex: http.StatusBadRequest}

// finalFor is e as client client should get it: a final answer takes the
// client's final status, the rest is unchanged.
func finalFor(e *HTTPError, client string) *HTTPError {
	code, ok := finalStatus[client]
	if !e.NoRetry || !ok {
		return e
	}
	c := *e
	c.Code = code
	return &c
}

// clientRule recognises a client by a product token of its user agent
// ("claude-cli/2.1.332"): the token's name, case-insensitively.
type clientRule struct {
	product string // the user agent's product name
	client  string
}

// clientRules are tried in order against each product token of the user
// agent; the first match wins. The AI SDK comes before the provider SDKs
// (its user agent names both), LangChain before them too. What each real
// client sends is in testdata/clients. LangChain JS 1.5 sends only the
// Anthropic SDK's user agent, so it is identified as that SDK.
var clientRules = []clientRule{
	{"claude-cli", ClientClaudeCode},
	{"claude-code", ClientClaudeCode},
	{"codex_exec", ClientCodex},
	{"codex_cli_rs", ClientCodex},
	{"codex", ClientCodex},
	{"openclaw", ClientOpenClaw},
	{"langchain", ClientLangChain},
	{"langchainjs", ClientLangChain},
	{"ai", ClientAISDK},
	{"ai-sdk", ClientAISDK},
	{"anthropic", ClientAnthropicSDK},
	{"openai", ClientOpenAISDK},
	{"curl", ClientCurl},
}

// IdentifyClient names the calling client and its version from the user
// agent (and Codex's originator header).
func IdentifyClient(h http.Header) (name, version string) {
	if id := clientOfUA(h.Get("User-Agent")); id.ok {
		return id.name, id.version
	}
	if o := strings.ToLower(h.Get("Originator")); strings.HasPrefix(o, "codex") {
		return ClientCodex, ""
	}
	return ClientUnknown, ""
}

// uaClient is what a user agent alone says of the client (ok: a rule matched).
type uaClient struct {
	name, version string
	ok            bool
}

// uaMemo keeps clientOfUA's answers: a client sends the same user agent
// on every request. Only user agents up to maxMemoUA bytes are kept, and
// the memo starts over at maxUAMemo entries, so a caller sending a new
// user agent each time costs at most maxUAMemo × maxMemoUA bytes. A
// sync.Map, because every request reads it and almost none writes: a
// read-write mutex's reader count was a cache line every core wrote.
var uaMemo struct {
	m sync.Map // user agent → uaClient
	n atomic.Int64
}

const (
	maxUAMemo = 512
	maxMemoUA = 256
)

func clientOfUA(ua string) uaClient {
	if len(ua) > maxMemoUA {
		return matchUA(ua)
	}
	if id, hit := uaMemo.m.Load(ua); hit {
		return id.(uaClient)
	}
	id := matchUA(ua)
	if uaMemo.n.Add(1) > maxUAMemo {
		uaMemo.m.Clear()
		uaMemo.n.Store(1)
	}
	uaMemo.m.Store(strings.Clone(ua), id) // not a slice of the request's header block
	return id
}

// matchUA tries clientRules against ua's product tokens.
func matchUA(ua string) uaClient {
	tokens := productTokens(ua)
	for _, rule := range clientRules {
		for _, t := range tokens {
			if strings.EqualFold(t.name, rule.product) {
				return uaClient{rule.client, t.version, true}
			}
		}
	}
	return uaClient{}
}

type productToken struct{ name, version string }

// productTokens splits a user agent into its name/version tokens,
// skipping comments in parentheses. "Anthropic/JS 1.15.0" is the
// Stainless SDKs' form: the version follows the language, separated by a
// space, and is taken as the version of "Anthropic".
func productTokens(ua string) []productToken {
	var out []productToken
	depth := 0
	for _, f := range strings.Fields(ua) {
		if depth > 0 || strings.HasPrefix(f, "(") {
			depth += strings.Count(f, "(") - strings.Count(f, ")")
			continue
		}
		name, version, _ := strings.Cut(f, "/")
		if name == "" {
			continue
		}
		if len(out) > 0 && isVersion(name) && !strings.Contains(f, "/") && isLanguage(out[len(out)-1].version) {
			out[len(out)-1].version = name // "Anthropic/JS 1.15.0"
			continue
		}
		out = append(out, productToken{name, version})
	}
	return out
}

func isLanguage(s string) bool {
	switch strings.ToLower(s) {
	case "js", "python", "go", "java", "ruby", "kotlin", "csharp", "php":
		return true
	}
	return false
}

func isVersion(s string) bool {
	return s != "" && s[0] >= '0' && s[0] <= '9'
}
