package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// What an upstream sends back reaches a caller who may hold only an agent
// token, so an upstream that echoes a credential (in a header or an
// error body) must not hand it on. Headers that carry credentials are
// dropped; any secret the gateway stores that appears in a header value
// or in the body is replaced by a mask of the same length (so
// Content-Length stays true): the recognisable part of Mask's form, then
// '*'. The body is searched as it streams, with a secret split across two
// reads still found, and only a tail that could begin a secret is held
// back, so SSE events are not delayed.

// credentialHeaders never reach the client from an upstream answer.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "X-Goog-Api-Key", "Api-Key", "X-Opensoul-Token"}

// minScrubLen skips values too short to be a credential; a short one
// would mask ordinary text.
const minScrubLen = 12

// secretSet is the secrets to hide from one answer and their masks.
// A set is built once per state of what it hides (see secretsFor) and
// then only read, by any number of answers at once.
type secretSet struct {
	secrets, masks [][]byte
	strs           []string // secrets as strings, to look for in headers
	longest        int
	seen           map[string]bool

	// With many secrets (an agent with a thousand keys) a search per
	// secret would cost every answer a pass over all of them: index
	// finds the secrets that begin with a given minScrubLen bytes, and
	// heads holds every shorter beginning, so replace and holdBack cost
	// about the same for a thousand secrets as for one.
	index map[string][]int
	heads map[string]bool
}

// indexFrom is the number of secrets from which a set searches by index.
const indexFrom = 16

func (ss *secretSet) add(secret string) {
	if len(secret) < minScrubLen || ss.seen[secret] {
		return
	}
	if ss.seen == nil {
		ss.seen = map[string]bool{}
	}
	ss.seen[secret] = true
	ss.secrets = append(ss.secrets, []byte(secret))
	ss.strs = append(ss.strs, secret)
	ss.masks = append(ss.masks, []byte(sameLengthMask(secret)))
	ss.longest = max(ss.longest, len(secret))
	ss.index, ss.heads = nil, nil // built by done
}

// done indexes a set of many secrets; call it once all are added.
func (ss *secretSet) done() *secretSet {
	if len(ss.secrets) < indexFrom {
		return ss
	}
	ss.index = make(map[string][]int, len(ss.secrets))
	ss.heads = make(map[string]bool, len(ss.secrets)*(minScrubLen-1))
	for i, sec := range ss.secrets {
		k := string(sec[:minScrubLen])
		ss.index[k] = append(ss.index[k], i)
		for n := 1; n < minScrubLen; n++ {
			ss.heads[string(sec[:n])] = true
		}
	}
	return ss
}

// sameLengthMask is Mask's prefix (no last characters) padded with '*' to
// the secret's length.
func sameLengthMask(secret string) string {
	m := Mask(secret)
	prefix, _, _ := strings.Cut(m, "…")
	if len(prefix) >= len(secret) || strings.HasPrefix(m, "•") {
		prefix = ""
	}
	return prefix + strings.Repeat("*", len(secret)-len(prefix))
}

// secretsFor collects what the gateway could leak in rs's answer: every
// stored credential the agent sees, the environment and config keys of
// the provider, and the gateway tokens. The set is built once per
// snapshot of the agent's profiles (kept while only usage state changes),
// environment, config and provider, not once per answer.
func (s *Server) secretsFor(rs *reqState) *secretSet {
	envp := s.env.Load()
	if rs.al == nil {
		return s.buildSecrets(rs, nil, envp)
	}
	snap := rs.al.snap.Load()
	key := scrubKey{env: envp, rc: rs.rc, provider: rs.provider}
	if ss := snap.scrub.get(key); ss != nil {
		return ss
	}
	ss := s.buildSecrets(rs, snap, envp)
	snap.scrub.put(key, ss)
	return ss
}

func (s *Server) buildSecrets(rs *reqState, snap *Snapshot, envp *Env) *secretSet {
	ss := &secretSet{}
	if snap != nil {
		for _, c := range snap.Profiles {
			ss.add(c.Secret())
			ss.add(c.Refresh)
		}
	}
	env := *envp
	for _, c := range envVarsOf(rs.provider) {
		ss.add(env[c.Var].Value)
	}
	for _, up := range rs.rc.Providers {
		ss.add(up.APIKey)
	}
	ss.add(rs.rc.Token)
	for _, tok := range rs.rc.AgentTokens {
		ss.add(tok)
	}
	return ss.done()
}

// scrubMemo keeps a snapshot's secret sets. Snapshots that differ only in
// usage state share it (they share the profiles).
type scrubMemo struct {
	mu sync.Mutex
	m  map[scrubKey]*secretSet
}

type scrubKey struct {
	env      *Env
	rc       *runtimeConfig
	provider string
}

func (m *scrubMemo) get(k scrubKey) *secretSet {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k]
}

func (m *scrubMemo) put(k scrubKey, ss *secretSet) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= 64 {
		m.m = map[scrubKey]*secretSet{} // configs and environments replaced many times
	}
	m.m[k] = ss
}

// replace masks every secret in b in place.
func (ss *secretSet) replace(b []byte) {
	if ss.index != nil {
		ss.replaceIndexed(b)
		return
	}
	for i, sec := range ss.secrets {
		for off := 0; ; {
			j := bytes.Index(b[off:], sec)
			if j < 0 {
				break
			}
			copy(b[off+j:], ss.masks[i])
			off += j + len(sec)
		}
	}
}

// replaceIndexed is replace by index: at each offset, the secrets that
// begin with the next minScrubLen bytes are the only ones to compare (the
// longest that matches is masked).
func (ss *secretSet) replaceIndexed(b []byte) {
	for i := 0; i+minScrubLen <= len(b); {
		best := -1
		for _, j := range ss.index[string(b[i:i+minScrubLen])] {
			if sec := ss.secrets[j]; bytes.HasPrefix(b[i:], sec) && (best < 0 || len(sec) > len(ss.secrets[best])) {
				best = j
			}
		}
		if best < 0 {
			i++
			continue
		}
		copy(b[i:], ss.masks[best])
		i += len(ss.secrets[best])
	}
}

// holdBack is how many bytes at the end of b could begin a secret.
func (ss *secretSet) holdBack(b []byte) int {
	if ss.index != nil {
		return ss.holdBackIndexed(b)
	}
	hold := 0
	for _, sec := range ss.secrets {
		for n := min(len(sec)-1, len(b)); n > hold; n-- {
			if bytes.HasSuffix(b, sec[:n]) {
				hold = n
				break
			}
		}
	}
	return hold
}

// holdBackIndexed is holdBack by index: the longest tail of b that some
// secret (longer than it) begins with.
func (ss *secretSet) holdBackIndexed(b []byte) int {
	for n := min(ss.longest-1, len(b)); n > 0; n-- {
		tail := b[len(b)-n:]
		if n < minScrubLen {
			if ss.heads[string(tail)] {
				return n
			}
			continue
		}
		for _, j := range ss.index[string(tail[:minScrubLen])] {
			if sec := ss.secrets[j]; len(sec) > n && bytes.HasPrefix(sec, tail) {
				return n
			}
		}
	}
	return 0
}

// scrubHeaders drops credential headers and masks secrets in the others.
func (ss *secretSet) scrubHeaders(h http.Header) {
	for _, name := range credentialHeaders {
		h.Del(name)
	}
	if len(ss.secrets) == 0 {
		return
	}
	for name, vals := range h {
		for i, v := range vals {
			if !ss.mayHold(v) {
				continue // most values: no copy to bytes and back
			}
			b := []byte(v)
			ss.replace(b)
			h[name][i] = string(b)
		}
	}
}

// mayHold says whether v may hold a secret: false only when replace
// would leave it unchanged.
func (ss *secretSet) mayHold(v string) bool {
	if len(v) < minScrubLen {
		return false
	}
	if ss.index != nil {
		for i := 0; i+minScrubLen <= len(v); i++ {
			if _, ok := ss.index[v[i:i+minScrubLen]]; ok {
				return true
			}
		}
		return false
	}
	for _, sec := range ss.strs {
		if strings.Contains(v, sec) {
			return true
		}
	}
	return false
}

// scrubReader masks secrets in a body as it is read.
type scrubReader struct {
	src io.ReadCloser
	ss  *secretSet
	buf *[]byte // read from src, not yet returned; lent by scrubBufs until the body ends
	out int     // (*buf)[:out] is masked and may be returned
	err error
}

// scrubBufs lends scrubReaders their buffers: a fresh 32 KiB buffer per
// answer was most of what scrubbing a small answer cost.
var scrubBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, scrubRead)
	return &b
}}

// scrubRead is how much a scrubReader asks its source for at once.
const scrubRead = 32 << 10

func newScrubReader(src io.ReadCloser, ss *secretSet) *scrubReader {
	return &scrubReader{src: src, ss: ss}
}

func (r *scrubReader) Read(p []byte) (int, error) {
	for r.out == 0 && r.err == nil {
		if r.buf == nil {
			r.buf = scrubBufs.Get().(*[]byte)
		}
		b := *r.buf
		if cap(b)-len(b) < scrubRead/2 {
			b = slices.Grow(b, scrubRead)
		}
		n, err := r.src.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		*r.buf = b
		r.err = err
		r.ss.replace(b)
		r.out = len(b)
		if err == nil {
			r.out -= r.ss.holdBack(b)
		}
	}
	if r.buf == nil {
		return 0, r.err
	}
	b := *r.buf
	n := copy(p, b[:r.out])
	*r.buf = b[:copy(b, b[n:])]
	r.out -= n
	if r.out == 0 && len(*r.buf) == 0 && r.err != nil {
		r.release()
		return n, r.err
	}
	return n, nil
}

// release hands the buffer back once the body is done or closed.
func (r *scrubReader) release() {
	if r.buf == nil {
		return
	}
	if cap(*r.buf) <= 2*scrubRead {
		*r.buf = (*r.buf)[:0]
		scrubBufs.Put(r.buf)
	}
	r.buf, r.out = nil, 0
}

// Close closes the body; the proxy reads and closes it on one goroutine.
func (r *scrubReader) Close() error {
	r.release()
	if r.err == nil {
		r.err = errBodyClosed
	}
	return r.src.Close()
}

var errBodyClosed = errors.New("opensoul: read after the answer's body was closed")
