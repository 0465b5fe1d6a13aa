package chat

import (
	"encoding/json"
	"strings"
)

// scanTop finds the body's top-level field name (the last one, as
// encoding/json would take it) without decoding anything: one pass that
// only tracks strings and nesting. It returns the field's raw value and,
// when that is an array, the array's raw elements, found in the same
// pass. It does not validate the body; what it returns is decoded (and so
// checked) by the caller.
func scanTop(b []byte, name string) (val []byte, elems [][]byte, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, nil, false
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil, nil, false
		}
		end := skipString(b, i)
		if end < 0 {
			return nil, nil, false
		}
		key := b[i:end]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, nil, false
		}
		i = skipSpace(b, i+1)
		start, match := i, isKey(key, name)
		switch {
		case !match:
			i = skipValue(b, i)
		case i < len(b) && b[i] == '[':
			elems, i = elements(b, i)
		default:
			elems, i = nil, skipValue(b, i)
		}
		if i < 0 {
			return nil, nil, false
		}
		if match {
			val = b[start:i]
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return val, elems, val != nil
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// isKey reports whether the quoted key is name the way encoding/json
// matches field names: unescaped, case-insensitively.
func isKey(quoted []byte, name string) bool {
	if string(quoted) == `"`+name+`"` {
		return true
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && strings.EqualFold(s, name)
}

// elements returns the raw elements of the array at b[i] and the index
// after the array, or -1.
func elements(b []byte, i int) ([][]byte, int) {
	var elems [][]byte
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil, i + 1
	}
	for i < len(b) {
		end := skipValue(b, i)
		if end < 0 {
			return nil, -1
		}
		elems = append(elems, b[i:end])
		i = skipSpace(b, end)
		if i >= len(b) {
			return nil, -1
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return elems, i + 1
		default:
			return nil, -1
		}
	}
	return nil, -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i], or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i-- // the loop's i++ moves past the closing quote
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}
