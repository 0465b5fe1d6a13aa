package guest

import (
	"encoding/base64"
	"strings"
)

// Vendor names the provider whose key format s has, or "" when unknown.
// Modules use it to say why a secret pasted under the wrong provider fails.
func Vendor(s string) string {
	switch {
	case strings.HasPrefix(s, "sk-ant-"):
		return "Anthropic"
	case strings.HasPrefix(s, "sk-or-"):
		return "OpenRouter"
	case strings.HasPrefix(s, "sk-"):
		return "OpenAI"
	case strings.HasPrefix(s, "AIza"):
		return "Google"
	}
	return ""
}

// Mismatch is a check verdict for a secret of another vendor's format.
func Mismatch(s, want string) (Check, bool) {
	got := Vendor(s)
	if got == "" || got == want {
		return Check{}, false
	}
	return Check{
		Kind:   "unknown",
		Reason: "looks like " + article(got) + " " + got + " key, not " + article(want) + " " + want + " credential",
		Hint:   "store it under the " + strings.ToLower(got) + " provider, or paste " + article(want) + " " + want + " credential here",
	}, true
}

func article(name string) string {
	if strings.ContainsRune("AEIOU", rune(name[0])) {
		return "an"
	}
	return "a"
}

// keyChar marks the bytes a key of every built-in provider is made of.
var keyChar [256]bool

func init() {
	for c := range 256 {
		keyChar[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
}

// BadShape says what is wrong with a secret's characters, or "".
// Secrets of every built-in provider are [A-Za-z0-9_-] after their prefix.
func BadShape(s string) string {
	i := 0
	for ; i+8 <= len(s); i += 8 { // eight at a time: see skipPlain
		if !(keyChar[s[i]] && keyChar[s[i+1]] && keyChar[s[i+2]] && keyChar[s[i+3]] &&
			keyChar[s[i+4]] && keyChar[s[i+5]] && keyChar[s[i+6]] && keyChar[s[i+7]]) {
			break
		}
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case keyChar[c]:
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return "contains whitespace or a line break (was it pasted in pieces?)"
		default:
			return "contains a character that never appears in such a key"
		}
	}
	return ""
}

// Expired reports whether expiresAt (epoch ms) is at or before now.
// A zero now means the caller gave no time, and nothing is expired.
func Expired(expiresAt *int64, now int64) bool {
	return expiresAt != nil && now > 0 && *expiresAt <= now
}

// JWTExpiry returns a JWT's exp claim in epoch ms. ok is false when s is
// not a JWT; hasExp is false when it is one without a numeric exp.
func JWTExpiry(s string) (ms int64, hasExp, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || !strings.HasPrefix(s, "eyJ") {
		return 0, false, false
	}
	header, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	payload, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err1 != nil || err2 != nil {
		return 0, false, false
	}
	if h, err := Parse(header); err != nil || !isObject(h) {
		return 0, false, false
	}
	p, err := Parse(payload)
	if err != nil || !isObject(p) {
		return 0, false, false
	}
	exp, isNum := p.(map[string]any)["exp"].(float64)
	if !isNum {
		return 0, false, true
	}
	return int64(exp) * 1000, true, true
}

func isObject(v any) bool { _, ok := v.(map[string]any); return ok }

// Bearer is the usual presentation of a secret. x-api-key is removed, as
// clients may have put the gateway's own token there.
func Bearer(r Request) Headers {
	return Headers{Set: map[string]string{"authorization": "Bearer " + r.Secret}, Remove: []string{"x-api-key"}}
}
