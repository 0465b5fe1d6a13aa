// Package scrub keeps the secrets the gateway holds out of what an
// upstream sends back (a Set of secrets, masked in headers and, as it
// streams, in the body), and masks a secret for display (Mask).
package scrub

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

// Set is the secrets to hide from one answer and their masks.
// A set is built (Add, then Done) once per state of what it hides (the
// gateway keeps its sets with its snapshots) and then only read, by any
// number of answers at once.
type Set struct {
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

// Add adds a secret to hide (one shorter than minScrubLen is skipped).
func (ss *Set) Add(secret string) {
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

// Len is the number of secrets in the set.
func (ss *Set) Len() int { return len(ss.secrets) }

// Done indexes a set of many secrets; call it once all are added.
func (ss *Set) Done() *Set {
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

// Replace masks every secret in b in place.
func (ss *Set) Replace(b []byte) {
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

// replaceIndexed is Replace by index: at each offset, the secrets that
// begin with the next minScrubLen bytes are the only ones to compare (the
// longest that matches is masked).
func (ss *Set) replaceIndexed(b []byte) {
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

// Mask returns s with every secret in it masked.
func (ss *Set) Mask(s string) string {
	b := []byte(s)
	ss.Replace(b)
	return string(b)
}

// holdBack is how many bytes at the end of b could begin a secret.
func (ss *Set) holdBack(b []byte) int {
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
func (ss *Set) holdBackIndexed(b []byte) int {
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

// Headers drops credential headers and masks secrets in the others. h
// is an upstream answer's, whose names Go's client canonicalised, so the
// canonical names are deleted as they are.
func (ss *Set) Headers(h http.Header) {
	for _, name := range credentialHeaders {
		delete(h, name)
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
			ss.Replace(b)
			h[name][i] = string(b)
		}
	}
}

// mayHold says whether v may hold a secret: false only when Replace
// would leave it unchanged.
func (ss *Set) mayHold(v string) bool {
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

// Reader masks secrets in a body as it is read.
type Reader struct {
	src io.ReadCloser
	ss  *Set
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

// scrubRead is how much a Reader asks its source for at once.
const scrubRead = 32 << 10

// NewReader masks ss's secrets in src as it is read.
func NewReader(src io.ReadCloser, ss *Set) *Reader {
	return &Reader{src: src, ss: ss}
}

func (r *Reader) Read(p []byte) (int, error) {
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
		r.ss.Replace(b)
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
func (r *Reader) release() {
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
func (r *Reader) Close() error {
	r.release()
	if r.err == nil {
		r.err = errBodyClosed
	}
	return r.src.Close()
}

var errBodyClosed = errors.New("opensoul: read after the answer's body was closed")
