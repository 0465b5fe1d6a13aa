package keep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/store"
)

// Provider CLIs whose logins OpenSoul can share (store.External.Source).
const (
	// SourceCodex is the Codex CLI's $CODEX_HOME/auth.json (default
	// ~/.codex/auth.json): {"OPENAI_API_KEY":…, "tokens":{"id_token",
	// "access_token","refresh_token","account_id"}, "last_refresh":RFC 3339}.
	SourceCodex = "codex"
	// SourceClaude is the Claude CLI's ~/.claude/.credentials.json (Linux;
	// macOS keeps it in the Keychain): {"claudeAiOauth":{"accessToken",
	// "refreshToken","expiresAt" (epoch ms),"scopes","subscriptionType"}}.
	SourceClaude = "claude"
)

// ExternalProvider is the provider a source's logins are for.
func ExternalProvider(source string) string {
	if source == SourceClaude {
		return "anthropic"
	}
	return "openai"
}

// ReadExternal reads a provider CLI's credential file as an oauth
// credential (provider, tokens, expiry, email and account id when the
// file says). Errors name the file and never hold a token.
func ReadExternal(source, path string) (store.Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return store.Credential{}, err
	}
	c := store.Credential{Type: store.TypeOAuth, Provider: ExternalProvider(source)}
	switch source {
	case SourceCodex:
		var f struct {
			Tokens *struct {
				IDToken      string `json:"id_token"`
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
				AccountID    string `json:"account_id"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return c, fmt.Errorf("%s: not a Codex auth.json: %w", path, err)
		}
		if f.Tokens == nil || f.Tokens.AccessToken == "" {
			return c, fmt.Errorf("%s holds no ChatGPT login (no tokens.access_token; an API-key-only Codex login cannot be shared, paste the key instead)", path)
		}
		c.Access, c.Refresh, c.AccountID = f.Tokens.AccessToken, f.Tokens.RefreshToken, f.Tokens.AccountID
		id := oauth.Claims(f.Tokens.IDToken)
		if s, ok := id["email"].(string); ok {
			c.Email = s
		}
		if c.AccountID == "" {
			if auth, ok := id["https://api.openai.com/auth"].(map[string]any); ok {
				c.AccountID, _ = auth["chatgpt_account_id"].(string)
			}
		}
		if exp, ok := oauth.Claims(c.Access)["exp"].(float64); ok {
			c.Expires = int64(exp) * 1000
		}
	case SourceClaude:
		var f struct {
			OAuth *struct {
				AccessToken  string `json:"accessToken"`
				RefreshToken string `json:"refreshToken"`
				ExpiresAt    int64  `json:"expiresAt"`
			} `json:"claudeAiOauth"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return c, fmt.Errorf("%s: not a Claude credentials file: %w", path, err)
		}
		if f.OAuth == nil || f.OAuth.AccessToken == "" {
			return c, fmt.Errorf("%s holds no Claude login (no claudeAiOauth.accessToken)", path)
		}
		c.Access, c.Refresh, c.Expires = f.OAuth.AccessToken, f.OAuth.RefreshToken, f.OAuth.ExpiresAt
	default:
		return c, fmt.Errorf("unknown credential source %q (want codex or claude)", source)
	}
	return c, nil
}

// WriteExternal puts c's tokens back into the source file, keeping every
// other field, atomically and with mode 0600.
func WriteExternal(source, path string, c store.Credential) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	obj := func(key string) map[string]any {
		m, _ := doc[key].(map[string]any)
		if m == nil {
			m = map[string]any{}
			doc[key] = m
		}
		return m
	}
	switch source {
	case SourceCodex:
		t := obj("tokens")
		t["access_token"], t["refresh_token"] = c.Access, c.Refresh
		doc["last_refresh"] = time.Now().UTC().Format(time.RFC3339Nano)
	case SourceClaude:
		t := obj("claudeAiOauth")
		t["accessToken"], t["refreshToken"], t["expiresAt"] = c.Access, c.Refresh, c.Expires
	default:
		return errors.New("unknown credential source " + source)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return store.WriteFileAtomic(path, buf.Bytes())
}
