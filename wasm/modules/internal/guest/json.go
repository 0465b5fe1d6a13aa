package guest

// A small JSON reader and writer. encoding/json pulls in reflect, which
// nearly doubles a Go guest and its compile time in the host, so the
// built-in modules use this instead. It reads any valid JSON into
// map[string]any / []any / string / float64 / bool / nil.

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

var errSyntax = errors.New("invalid JSON")

// Parse decodes one JSON value.
func Parse(b []byte) (any, error) {
	p := parser{b: b}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, errSyntax
	}
	return v, nil
}

type parser struct {
	b []byte
	i int
}

const maxDepth = 64

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errSyntax
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.lit("true")
	case c == 'f':
		return false, p.lit("false")
	case c == 'n':
		return nil, p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, errSyntax
}

func (p *parser) lit(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return errSyntax
	}
	p.i += len(s)
	return nil
}

func (p *parser) object(depth int) (any, error) {
	m := map[string]any{}
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, errSyntax
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errSyntax
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.space()
		if p.i >= len(p.b) {
			return nil, errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, errSyntax
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	a := []any{}
	p.i++ // [
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.i >= len(p.b) {
			return nil, errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return a, nil
		default:
			return nil, errSyntax
		}
	}
}

func (p *parser) number() (any, error) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	if err != nil {
		return nil, errSyntax
	}
	return f, nil
}

func (p *parser) str() (string, error) {
	p.i++ // opening quote
	var out []byte
	start := p.i
	p.i = skipPlain(p.b, p.i, &strStop)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			if out == nil {
				s := string(p.b[start:p.i])
				p.i++
				return s, nil
			}
			out = append(out, p.b[start:p.i]...)
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", errSyntax
		case c == '\\':
			out = append(out, p.b[start:p.i]...)
			if p.i+1 >= len(p.b) {
				return "", errSyntax
			}
			p.i++
			switch e := p.b[p.i]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := p.hex4(p.i + 1)
				if !ok {
					return "", errSyntax
				}
				p.i += 4
				if r >= 0xD800 && r < 0xDC00 && p.i+2 < len(p.b) && p.b[p.i+1] == '\\' && p.b[p.i+2] == 'u' {
					if r2, ok := p.hex4(p.i + 3); ok && r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
						p.i += 6
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", errSyntax
			}
			p.i++
			start = p.i
			p.i = skipPlain(p.b, p.i, &strStop)
		default:
			p.i++
		}
	}
	return "", errSyntax
}

// Byte classes for the unrolled scans below. In the host, every loop
// iteration of a module costs a call (the check that enforces the
// deadline), so scans take eight bytes per iteration.
var (
	strStop   [256]bool // ends a plain run inside a JSON string
	jsonPlain [256]bool // written as is by appendString
)

func init() {
	for c := range 256 {
		strStop[c] = c == '"' || c == '\\' || c < 0x20
		jsonPlain[c] = c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
	}
}

// skipPlain returns the index of the first byte of b from i on that is
// not plain in class (stop marks the bytes that are not), eight at a time.
func skipPlain(b []byte, i int, stop *[256]bool) int {
	for ; i+8 <= len(b); i += 8 {
		w := b[i : i+8 : i+8]
		if stop[w[0]] || stop[w[1]] || stop[w[2]] || stop[w[3]] || stop[w[4]] || stop[w[5]] || stop[w[6]] || stop[w[7]] {
			break
		}
	}
	for i < len(b) && !stop[b[i]] {
		i++
	}
	return i
}

func (p *parser) hex4(at int) (rune, bool) {
	if at+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Writer builds one JSON object. Keys are written in call order.
type Writer struct {
	b     []byte
	first []bool
}

// NewObject starts a JSON object.
func NewObject() *Writer {
	w := &Writer{b: make([]byte, 1, 256), first: make([]bool, 1, 4)}
	w.b[0], w.first[0] = '{', true
	return w
}

func (w *Writer) key(k string) {
	n := len(w.first) - 1
	if !w.first[n] {
		w.b = append(w.b, ',')
	}
	w.first[n] = false
	w.b = appendString(w.b, k)
	w.b = append(w.b, ':')
}

// String writes "k":"v".
func (w *Writer) String(k, v string) *Writer { w.key(k); w.b = appendString(w.b, v); return w }

// Bool writes "k":v.
func (w *Writer) Bool(k string, v bool) *Writer {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
	return w
}

// Int writes "k":v, or "k":null when v is nil.
func (w *Writer) Int(k string, v *int64) *Writer {
	w.key(k)
	if v == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.b = strconv.AppendInt(w.b, *v, 10)
	}
	return w
}

// Open starts a nested object under k; Close ends it.
func (w *Writer) Open(k string) *Writer {
	w.key(k)
	w.b = append(w.b, '{')
	w.first = append(w.first, true)
	return w
}

// Close ends the innermost open object.
func (w *Writer) Close() *Writer {
	w.b = append(w.b, '}')
	w.first = w.first[:len(w.first)-1]
	return w
}

// Strings writes "k":[...].
func (w *Writer) Strings(k string, vs []string) *Writer {
	w.key(k)
	w.b = append(w.b, '[')
	for i, v := range vs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendString(w.b, v)
	}
	w.b = append(w.b, ']')
	return w
}

// Bytes ends the object and returns its encoding.
func (w *Writer) Bytes() []byte {
	for len(w.first) > 0 {
		w.Close()
	}
	return w.b
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for ; j+8 <= len(s); j += 8 {
			if !(jsonPlain[s[j]] && jsonPlain[s[j+1]] && jsonPlain[s[j+2]] && jsonPlain[s[j+3]] &&
				jsonPlain[s[j+4]] && jsonPlain[s[j+5]] && jsonPlain[s[j+6]] && jsonPlain[s[j+7]]) {
				break
			}
		}
		for j < len(s) && jsonPlain[s[j]] {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			default: // a control character
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
