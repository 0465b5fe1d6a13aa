package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var exportPrefix = regexp.MustCompile(`^(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*`)

// normalizeSecret cleans a pasted secret (DESIGN §3): surrounding
// whitespace and line breaks removed, a leading `export NAME=` and
// wrapping quotes stripped. It refuses input that still holds whitespace
// or control characters, which means the paste was mangled.
func normalizeSecret(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	s = exportPrefix.ReplaceAllString(s, "")
	s = strings.TrimSpace(s)
	for len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	// Line breaks inside a token come from terminal wrapping: join them.
	s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
	if s == "" {
		return "", errors.New("no secret given (empty input)")
	}
	if exportPrefix.MatchString(s) {
		// Peeling once more would change it: not a token, and normalizing
		// must give the same answer twice.
		return "", errors.New("the pasted secret still reads NAME=value after one such prefix was removed; paste only the token")
	}
	for i, r := range s {
		if r <= ' ' || r == 0x7f || r > '~' {
			return "", fmt.Errorf("the pasted secret has an unexpected character at position %d (whitespace, a control character or non-ASCII); paste it again without extra text", i+1)
		}
		if r == '"' || r == '\'' {
			return "", fmt.Errorf("the pasted secret has a stray quote at position %d; paste only the token", i+1)
		}
	}
	return s, nil
}
