package scrub

import "strings"

// secretPrefixes are the recognisable, non-secret starts of known
// credential formats, longest first.
var secretPrefixes = []string{
	"sk-ant-oat01-", "sk-ant-ort01-", "sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-or-v1-", "sk-or-", "sk-svcacct-", "sk-", "AIza",
}

// Mask renders a secret for display: at most a recognisable prefix and
// the last 4 characters. Secrets shorter than 16 characters are fully
// hidden, and the prefix is shown only when plenty remains hidden.
func Mask(secret string) string {
	if secret == "" {
		return ""
	}
	if len(secret) < 16 {
		return "••••"
	}
	prefix := ""
	for _, p := range secretPrefixes {
		if strings.HasPrefix(secret, p) && len(secret)-len(p) >= 16 {
			prefix = p
			break
		}
	}
	return prefix + "…" + secret[len(secret)-4:]
}
