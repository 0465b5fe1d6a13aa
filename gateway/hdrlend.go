package gateway

import (
	"net/http"
	"slices"
)

// An attempt presents its credential on a copy of the outgoing headers
// (ReverseProxy's own copy of the caller's). Most requests are served by
// their first attempt, so that one is lent the outgoing headers themselves
// and writes down what its edits replace (headerUndo); an attempt after it
// (failover, or a login's retry after a refresh) gets a copy with those
// values put back, so no credential's header reaches another attempt and
// the headers it sends are the caller's, as if the first had never run.
// The outgoing headers are never written after the first attempt is sent
// (the transport may still be reading them).

// savedHeader is one header's values before an attempt's first edit of it.
type savedHeader struct {
	key  string // canonical
	vals []string
	had  bool
}

// headerUndo records what the first attempt's edits replaced. A nil
// *headerUndo records nothing: an attempt editing its own copy.
type headerUndo struct {
	saved []savedHeader
	buf   [4]savedHeader // saved's first array: a credential edits two or three names
}

// save records h's values of name before an edit (only the first edit
// of a name counts) and returns name's canonical key.
func (u *headerUndo) save(h http.Header, name string) string {
	key := http.CanonicalHeaderKey(name)
	if u == nil {
		return key
	}
	for _, s := range u.saved {
		if s.key == key {
			return key
		}
	}
	v, had := h[key]
	u.saved = append(u.saved, savedHeader{key: key, vals: v, had: had})
	return key
}

// set is h.Set recording what it replaces.
func (u *headerUndo) set(h http.Header, name, value string) {
	h[u.save(h, name)] = []string{value}
}

// del is h.Del recording what it removes.
func (u *headerUndo) del(h http.Header, name string) {
	delete(h, u.save(h, name))
}

// restored is a copy of h with the recorded values put back.
func (u *headerUndo) restored(h http.Header) http.Header {
	c := h.Clone()
	for _, s := range u.saved {
		if s.had {
			c[s.key] = slices.Clone(s.vals)
		} else {
			delete(c, s.key)
		}
	}
	return c
}

// attemptHeader is the header for an attempt of rs on out: out's own for
// the first, with the undo to record its edits in; a restored copy (and
// a nil undo) for any later one.
func (rs *reqState) attemptHeader(out *http.Request, first bool) (http.Header, *headerUndo) {
	if first {
		rs.hdrUndo.saved = rs.hdrUndo.buf[:0]
		return out.Header, &rs.hdrUndo
	}
	return rs.hdrUndo.restored(out.Header), nil
}
