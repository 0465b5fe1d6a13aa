package store

import (
	"crypto/sha256"
	"encoding/hex"
)

// Tag names the secret of an API key or token credential without
// revealing it: 16 hex digits of a SHA-256 of the secret. The gateway
// records it with a failure (UsageStats.SecretTag), so a cooldown or
// disable recorded for a secret since replaced (by hand, or while the CLI
// replaced it) can be told apart and lifted (doctor --fix). An OAuth login
// has none: its access token changes with every refresh while its limits
// stay the account's.
func (c Credential) Tag() string {
	if c.Type == TypeOAuth || c.Secret() == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("opensoul-secret-tag\x00" + c.Secret()))
	return hex.EncodeToString(sum[:8])
}
