package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"
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
type secretSet struct {
	secrets, masks [][]byte
	longest        int
}

func (ss *secretSet) add(secret string) {
	if len(secret) < minScrubLen {
		return
	}
	for _, s := range ss.secrets {
		if string(s) == secret {
			return
		}
	}
	ss.secrets = append(ss.secrets, []byte(secret))
	ss.masks = append(ss.masks, []byte(sameLengthMask(secret)))
	ss.longest = max(ss.longest, len(secret))
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
// the provider, and the gateway tokens.
func (s *Server) secretsFor(rs *reqState) *secretSet {
	ss := &secretSet{}
	if rs.al != nil {
		for _, c := range rs.al.snap.Load().Profiles {
			ss.add(c.Secret())
			ss.add(c.Refresh)
		}
	}
	env := *s.env.Load()
	for _, c := range EnvVarsFor(rs.provider) {
		ss.add(env[c.Var].Value)
	}
	for _, up := range rs.rc.Providers {
		ss.add(up.APIKey)
	}
	ss.add(rs.rc.Token)
	for _, tok := range rs.rc.AgentTokens {
		ss.add(tok)
	}
	return ss
}

// replace masks every secret in b in place and reports whether any was.
func (ss *secretSet) replace(b []byte) {
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

// holdBack is how many bytes at the end of b could begin a secret.
func (ss *secretSet) holdBack(b []byte) int {
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
			b := []byte(v)
			ss.replace(b)
			h[name][i] = string(b)
		}
	}
}

// scrubReader masks secrets in a body as it is read.
type scrubReader struct {
	src  io.ReadCloser
	ss   *secretSet
	buf  []byte // read from src, not yet returned
	out  int    // buf[:out] is masked and may be returned
	err  error
	read []byte
}

func newScrubReader(src io.ReadCloser, ss *secretSet) *scrubReader {
	return &scrubReader{src: src, ss: ss, read: make([]byte, 32<<10)}
}

func (r *scrubReader) Read(p []byte) (int, error) {
	for r.out == 0 && r.err == nil {
		n, err := r.src.Read(r.read)
		r.buf = append(r.buf, r.read[:n]...)
		r.err = err
		r.ss.replace(r.buf)
		r.out = len(r.buf)
		if err == nil {
			r.out -= r.ss.holdBack(r.buf)
		}
	}
	n := copy(p, r.buf[:r.out])
	r.buf = r.buf[:copy(r.buf, r.buf[n:])]
	r.out -= n
	if r.out == 0 && len(r.buf) == 0 && r.err != nil {
		return n, r.err
	}
	return n, nil
}

func (r *scrubReader) Close() error { return r.src.Close() }
