// Package dotenv reads and writes .env files (~/.opensoul/.env, a
// project's .env): KEY=value lines, parsed with the line of any error,
// and one key set in place under the file's lock, written atomically.
package dotenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/opensoul/opensoul/gateway/store"
)

// Error names the line of a .env file that could not be parsed.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ReadFile parses a .env file; a missing file is empty.
func ReadFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return Parse(path, string(data))
}

// Parse reads KEY=value lines. It accepts `export KEY=value`,
// comments, blank lines, single quotes (literal), double quotes (with \n,
// \t, \", \\ escapes) and a trailing " # comment" after an unquoted value.
// The first definition of a key wins, as in the rest of the env chain.
func Parse(file, data string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &Error{file, n, "expected KEY=value"}
		}
		key = strings.TrimSpace(key)
		if !ValidName(key) {
			return nil, &Error{file, n, fmt.Sprintf("invalid variable name %q", key)}
		}
		v, err := parseValue(strings.TrimSpace(val))
		if err != nil {
			return nil, &Error{file, n, fmt.Sprintf("%s: %v", key, err)}
		}
		if _, dup := out[key]; !dup {
			out[key] = v
		}
	}
	return out, nil
}

// ValidName says whether s may name a variable: letters, digits and _,
// not starting with a digit.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func parseValue(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	switch v[0] {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", errors.New("unterminated single quote")
		}
		return v[1 : 1+end], nil
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '"':
				return b.String(), nil
			case c == '\\' && i+1 < len(v):
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				default:
					b.WriteByte(v[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("unterminated double quote")
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v), nil
}

// Upsert sets KEY=value in a .env file under its lock, keeping
// every other line as it was. The file is written atomically, mode 0600.
func Upsert(path, key, value string) error {
	if !ValidName(key) {
		return fmt.Errorf("invalid variable name %q", key)
	}
	if strings.ContainsAny(value, "\n\r") {
		return fmt.Errorf("%s: value must be one line", key)
	}
	return store.WithLock(path, func() error {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if _, err := Parse(path, string(data)); err != nil {
			return fmt.Errorf("refusing to rewrite %w", err)
		}
		line := key + "=" + quote(value)
		var out []string
		replaced := false
		text := strings.TrimRight(string(data), "\n")
		if text != "" {
			for _, l := range strings.Split(text, "\n") {
				t := strings.TrimPrefix(strings.TrimSpace(l), "export ")
				if k, _, ok := strings.Cut(t, "="); ok && strings.TrimSpace(k) == key {
					if !replaced {
						out = append(out, line)
						replaced = true
					}
					continue
				}
				out = append(out, l)
			}
		}
		if !replaced {
			out = append(out, line)
		}
		return store.WriteFileAtomic(path, []byte(strings.Join(out, "\n")+"\n"))
	})
}

func quote(v string) string {
	if v == "" || strings.ContainsAny(v, " #'\"\\\t") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	}
	return v
}
