package keep_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/store"
)

// A provider CLI's credential file is read as an oauth login and written
// back with new tokens, keeping every field OpenSoul does not own, mode
// 0600.
func TestExternalReadAndWriteBack(t *testing.T) {
	for _, tc := range []struct {
		source, provider, file string
		tokens                 func(doc map[string]any) (access, refresh any)
	}{
		{keep.SourceCodex, "openai",
			`{"OPENAI_API_KEY":null,"tokens":{"id_token":"","access_token":"at-1","refresh_token":"rt-1","account_id":"acct-1"},"last_refresh":"2026-01-01T00:00:00Z","other":7}`,
			func(doc map[string]any) (any, any) {
				t := doc["tokens"].(map[string]any)
				return t["access_token"], t["refresh_token"]
			}},
		{keep.SourceClaude, "anthropic",
			`{"claudeAiOauth":{"accessToken":"at-1","refreshToken":"rt-1","expiresAt":1700000000000,"scopes":["user:inference"]},"other":7}`,
			func(doc map[string]any) (any, any) {
				t := doc["claudeAiOauth"].(map[string]any)
				return t["accessToken"], t["refreshToken"]
			}},
	} {
		t.Run(tc.source, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "creds.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := keep.ReadExternal(tc.source, path)
			if err != nil {
				t.Fatal(err)
			}
			if c.Type != store.TypeOAuth || c.Provider != tc.provider || c.Access != "at-1" || c.Refresh != "rt-1" {
				t.Fatalf("read %+v", c)
			}
			if keep.ExternalProvider(tc.source) != tc.provider {
				t.Fatalf("ExternalProvider(%s) = %s", tc.source, keep.ExternalProvider(tc.source))
			}
			c.Access, c.Refresh = "at-2", "rt-2"
			if err := keep.WriteExternal(tc.source, path, c); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			if a, r := tc.tokens(doc); a != "at-2" || r != "rt-2" || doc["other"] != float64(7) {
				t.Fatalf("written back: %s", data)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

// A file without a login, or an unknown source, is an error naming the
// file or the source, and never holding what the file holds.
func TestExternalErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(path, []byte(`{"OPENAI_API_KEY":"sk-SECRET"}`), 0o600)
	_, err := keep.ReadExternal(keep.SourceCodex, path)
	if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "sk-SECRET") {
		t.Fatalf("API-key-only Codex file: %v", err)
	}
	if _, err := keep.ReadExternal("gemini", path); err == nil || !strings.Contains(err.Error(), `"gemini"`) {
		t.Fatalf("unknown source: %v", err)
	}
	if err := keep.WriteExternal("gemini", path, store.Credential{}); err == nil {
		t.Fatal("WriteExternal took an unknown source")
	}
}
