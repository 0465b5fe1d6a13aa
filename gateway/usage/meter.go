package usage

import (
	"bytes"
	"io"
)

// key is what the Meter looks for: the name every provider gives its
// usage object, with its quotes so a mere mention in text does not match.
var key = []byte(`"usage"`)

// maxObject bounds the bytes kept of one usage object; a usage object is a
// few hundred bytes, so anything longer is not one and is dropped.
const maxObject = 8 << 10

type scanState uint8

const (
	searching   scanState = iota // looking for "usage"
	afterKey                     // saw "usage": want ':' (else it was a string value)
	beforeValue                  // saw ':': want '{' (null and others are skipped)
	capturing                    // inside the object, until its braces balance
)

// Meter passes a response body through unchanged and, as it goes, picks
// out the usage objects in it. It keeps no more than one usage object of
// the body (never the stream), so an SSE event goes on as soon as it is
// read. When the body ends or is closed (a client that went away closes
// it mid-stream) the Meter calls done, once, with what passed: a stream
// cut before its final usage reports the last counts it carried.
//
// A Meter is read and closed by one goroutine at a time, as
// httputil.ReverseProxy does with a response body.
type Meter struct {
	body io.ReadCloser
	x    extractor
	done func(Usage)
	u    Usage
	over bool // done has been called

	state   scanState
	prev    byte // the byte before the next read's first, for the escape check
	partial int  // bytes of key the last read ended with, while searching
	obj     []byte
	depth   int
	inStr   bool
	esc     bool
}

// NewMeter meters body, an answer of wire API api (an unknown api is
// read by the fields its usage carries); done gets the usage when the body
// is finished with. done may be nil (Usage then tells the result).
func NewMeter(body io.ReadCloser, api string, done func(Usage)) *Meter {
	return &Meter{body: body, x: extractorFor(api), done: done}
}

// Read reads from the body and scans what it read.
func (m *Meter) Read(p []byte) (int, error) {
	n, err := m.body.Read(p)
	if n > 0 {
		m.scan(p[:n])
	}
	if err == io.EOF {
		m.report()
	}
	return n, err
}

// Close reports the usage seen so far, if not yet done, and closes the
// body.
func (m *Meter) Close() error {
	m.report()
	return m.body.Close()
}

// Usage is the usage seen so far.
func (m *Meter) Usage() Usage { return m.u }

func (m *Meter) report() {
	if m.over {
		return
	}
	m.over = true
	if m.done != nil {
		m.done(m.u)
	}
}

// Write scans p as if it had been read: a Meter also works as the
// writing end of a tee (io.TeeReader, io.MultiWriter).
func (m *Meter) Write(p []byte) (int, error) {
	m.scan(p)
	return len(p), nil
}

// scan runs the state machine over p. Each step consumes at least one
// byte or changes state, so the loop ends.
func (m *Meter) scan(p []byte) {
	before := m.prev
	for len(p) > 0 {
		var n int
		switch m.state {
		case searching:
			n = m.search(p, before)
		case afterKey:
			n = m.colon(p)
		case beforeValue:
			n = m.value(p)
		case capturing:
			n = m.capture(p)
		}
		if n > 0 {
			before, p = p[n-1], p[n:]
		}
	}
	m.prev = before
}

// search finds the key in p (or its rest, when the last read ended with
// its start). A key right after a backslash is an escaped quote inside a
// string, not a key.
func (m *Meter) search(p []byte, before byte) int {
	if m.partial > 0 {
		need := key[m.partial:]
		switch {
		case len(p) < len(need) && bytes.HasPrefix(need, p):
			m.partial += len(p)
			return len(p)
		case bytes.HasPrefix(p, need):
			m.partial, m.state = 0, afterKey
			return len(need)
		}
		m.partial = 0
	}
	for off := 0; ; {
		i := bytes.Index(p[off:], key)
		if i < 0 {
			break
		}
		at := off + i
		if (at > 0 && p[at-1] != '\\') || (at == 0 && before != '\\') {
			m.state = afterKey
			return at + len(key)
		}
		off = at + 1
	}
	m.partial = keyPrefixAtEnd(p, before)
	return len(p)
}

// keyPrefixAtEnd is how many bytes of key p ends with (not escaped).
func keyPrefixAtEnd(p []byte, before byte) int {
	for k := min(len(key)-1, len(p)); k > 0; k-- {
		if !bytes.HasSuffix(p, key[:k]) {
			continue
		}
		b := before
		if len(p) > k {
			b = p[len(p)-k-1]
		}
		if b != '\\' {
			return k
		}
	}
	return 0
}

func (m *Meter) colon(p []byte) int {
	i := skipSpace(p)
	if i == len(p) {
		return i
	}
	if p[i] == ':' {
		m.state = beforeValue
		return i + 1
	}
	m.state = searching // "usage" was a string value, not a key
	return i
}

func (m *Meter) value(p []byte) int {
	i := skipSpace(p)
	if i == len(p) {
		return i
	}
	if p[i] != '{' {
		m.state = searching // null, or not an object
		return i
	}
	m.state, m.depth, m.inStr, m.esc = capturing, 1, false, false
	m.obj = append(m.obj[:0], '{')
	return i + 1
}

// capture copies the object's bytes until its braces balance (braces in
// strings do not count), then decodes it.
func (m *Meter) capture(p []byte) int {
	for i, c := range p {
		if len(m.obj)+i >= maxObject {
			m.state = searching // too long to be usage; dropped at the same byte however reads split
			return i
		}
		if m.inStr {
			switch {
			case m.esc:
				m.esc = false
			case c == '\\':
				m.esc = true
			case c == '"':
				m.inStr = false
			}
			continue
		}
		switch c {
		case '"':
			m.inStr = true
		case '{':
			m.depth++
		case '}':
			m.depth--
			if m.depth == 0 {
				m.obj = append(m.obj, p[:i+1]...)
				decode(m.obj, m.x, &m.u)
				m.state = searching
				return i + 1
			}
		}
	}
	m.obj = append(m.obj, p...)
	return len(p)
}

func skipSpace(p []byte) int {
	i := 0
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}
