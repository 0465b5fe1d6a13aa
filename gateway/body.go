package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
)

// bodyMeta reads the top-level "model" and "stream" of a JSON request
// body. It walks the top level only and skips every other value without
// decoding it, so a long conversation costs a scan, not an Unmarshal.
// Anything that is not a JSON object yields "", false.
func bodyMeta(body []byte) (model string, stream bool) {
	s := scanner{b: body}
	s.space()
	if !s.eat('{') {
		return "", false
	}
	for {
		s.space()
		if s.eat('}') {
			return model, stream
		}
		key, ok := s.str()
		if !ok {
			return "", false
		}
		s.space()
		if !s.eat(':') {
			return "", false
		}
		s.space()
		start := s.i
		if !s.skip() {
			return "", false
		}
		val := body[start:s.i]
		switch string(key) {
		case "model":
			if m, ok := plainJSONString(val); ok {
				model = m
			} else if json.Unmarshal(val, &m) == nil {
				model = m
			}
		case "stream":
			stream = string(val) == "true"
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return model, stream
		}
		return "", false
	}
}

// plainJSONString reads a JSON string of printable ASCII without escapes
// (every model name seen) as encoding/json would, without its reflection;
// anything else is left to encoding/json.
func plainJSONString(val []byte) (string, bool) {
	if len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' {
		return "", false
	}
	inner := val[1 : len(val)-1]
	for _, c := range inner {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(inner), true
}

// rewriteModel returns a copy of body with its top-level "model" set to
// model, splicing the new value in so the rest stays byte for byte.
func rewriteModel(body []byte, model string) ([]byte, error) {
	v, _ := json.Marshal(model)
	start, end, ok := modelSpan(body)
	if !ok {
		return nil, errors.New("the request body is not a JSON object")
	}
	out := make([]byte, 0, len(body)+len(v)+10)
	if start < 0 { // no "model" yet: add it first
		out = append(out, body[:end]...)
		out = append(out, `"model":`...)
		out = append(out, v...)
		rest := bytes.TrimLeft(body[end:], " \t\r\n")
		if len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		return append(out, body[end:]...), nil
	}
	out = append(out, body[:start]...)
	out = append(out, v...)
	return append(out, body[end:]...), nil
}

// modelSpan finds the value of the last top-level "model" key. With no
// such key, start is -1 and end is just past the opening brace.
func modelSpan(body []byte) (start, end int, ok bool) {
	s := scanner{b: body}
	s.space()
	if !s.eat('{') {
		return 0, 0, false
	}
	start, end = -1, s.i
	for {
		s.space()
		if s.eat('}') {
			return start, end, true
		}
		key, ok := s.str()
		if !ok {
			return 0, 0, false
		}
		s.space()
		if !s.eat(':') {
			return 0, 0, false
		}
		s.space()
		vs := s.i
		if !s.skip() {
			return 0, 0, false
		}
		if string(key) == "model" {
			start, end = vs, s.i
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return start, end, true
		}
		return 0, 0, false
	}
}

// scanner walks JSON text without building values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string and returns its raw bytes (escapes kept): keys
// compared with it are plain ASCII, so an escaped key never matches.
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for {
		q := bytes.IndexByte(s.b[s.i:], '"') // the closing quote, unless escaped
		if q < 0 {
			s.i = len(s.b)
			return nil, false
		}
		s.i += q
		bs := 0
		for j := s.i - 1; j >= start && s.b[j] == '\\'; j-- {
			bs++
		}
		if bs%2 == 0 {
			raw := s.b[start:s.i]
			s.i++
			return raw, true
		}
		s.i++
	}
}

// skip passes over one value: a string, a literal or number, or a nested
// object or array (brackets counted, strings skipped whole).
func (s *scanner) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.i > start
		}
		s.i++
	}
	return s.i > start
}
