package connect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var when = time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)

func fileOf(t *testing.T, client string) *File {
	t.Helper()
	r, err := Build(client, scenarios[0].setup)
	if err != nil {
		t.Fatal(err)
	}
	return r.Parts[0].File
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeTwice writes f to path twice: the first run changes the file, the
// second must change nothing and make no backup.
func writeTwice(t *testing.T, f *File, path string) Written {
	t.Helper()
	w, err := f.Write(path, when)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Changed {
		t.Fatalf("first write changed nothing: %+v", w)
	}
	after := read(t, path)
	again, err := f.Write(path, when.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed || again.Backup != "" || read(t, path) != after {
		t.Errorf("second write was not idempotent: %+v\n%s", again, read(t, path))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	return w
}

func TestLocate(t *testing.T) {
	t.Parallel()
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	codex, oc := fileOf(t, "codex"), fileOf(t, "openclaw")
	if got := codex.Locate("/h", get); got != "/h/.codex/config.toml" {
		t.Errorf("codex: %s", got)
	}
	if got := oc.Locate("/h", get); got != "/h/.openclaw/openclaw.json" {
		t.Errorf("openclaw: %s", got)
	}
	env["CODEX_HOME"], env["OPENCLAW_STATE_DIR"] = "/c", "/s"
	if got := codex.Locate("/h", get); got != "/c/config.toml" {
		t.Errorf("codex with CODEX_HOME: %s", got)
	}
	if got := oc.Locate("/h", get); got != "/s/openclaw.json" {
		t.Errorf("openclaw with OPENCLAW_STATE_DIR: %s", got)
	}
	env["OPENCLAW_CONFIG_PATH"] = "/x/oc.json"
	if got := oc.Locate("/h", get); got != "/x/oc.json" {
		t.Errorf("openclaw with OPENCLAW_CONFIG_PATH: %s", got)
	}
}

func TestWriteCodexNewFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".codex", "config.toml")
	w := writeTwice(t, fileOf(t, "codex"), path)
	if w.Backup != "" {
		t.Errorf("a new file needs no backup: %+v", w)
	}
	if got := read(t, path); got != fileOf(t, "codex").Text {
		t.Errorf("new file:\n%s\nwant the block:\n%s", got, fileOf(t, "codex").Text)
	}
}

// TestWriteCodexKeepsUserContent: the user's keys, comments, other
// providers and profiles stay; an older opensoul table and a different
// model_provider are replaced; the old file is in the backup.
func TestWriteCodexKeepsUserContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.toml")
	old := `# my codex settings
model = "gpt-5.5"
model_provider = "azure"
approval_policy = "on-request"

[model_providers.azure]
name = "Azure"
base_url = "https://example.openai.azure.com/openai"
env_key = "AZURE_OPENAI_API_KEY"

[model_providers.opensoul]
name = "OpenSoul"
base_url = "http://127.0.0.1:1111/openai/v1"
env_key = "OPENSOUL_GATEWAY_TOKEN"

[profiles.fast]
model = "gpt-5.5-mini" # comment kept
`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	w := writeTwice(t, fileOf(t, "codex"), path)
	if w.Backup == "" || read(t, w.Backup) != old {
		t.Fatalf("backup %q does not hold the old file", w.Backup)
	}
	got := read(t, path)
	for _, keep := range []string{"# my codex settings", `model = "gpt-5.5"`, `approval_policy = "on-request"`, "[model_providers.azure]",
		`env_key = "AZURE_OPENAI_API_KEY"`, "[profiles.fast]", `model = "gpt-5.5-mini" # comment kept`} {
		if !strings.Contains(got, keep) {
			t.Errorf("lost %q:\n%s", keep, got)
		}
	}
	if strings.Contains(got, "1111") || strings.Contains(got, `"azure"`+"\n") || strings.Count(got, "model_provider =") != 1 {
		t.Errorf("old opensoul table or model_provider kept:\n%s", got)
	}
	var conf struct {
		ModelProvider  string `toml:"model_provider"`
		Model          string
		ModelProviders map[string]map[string]any `toml:"model_providers"`
		Profiles       map[string]map[string]any
	}
	if _, err := toml.Decode(got, &conf); err != nil {
		t.Fatalf("result does not parse: %v\n%s", err, got)
	}
	if conf.ModelProvider != "opensoul" || conf.Model != "gpt-5.5" || conf.ModelProviders["opensoul"]["wire_api"] != "responses" ||
		conf.ModelProviders["opensoul"]["base_url"] != gw+"/openai/v1" || conf.ModelProviders["azure"] == nil || conf.Profiles["fast"]["model"] != "gpt-5.5-mini" {
		t.Errorf("merged config: %+v\n%s", conf, got)
	}
}

func TestWriteRefusesWhatItCannotMergeSafely(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		client, old, want string
	}{
		{"codex", "model = \n[broken", "does not parse as TOML"},
		// The opensoul provider defined inline: merging a table would
		// define it twice.
		{"codex", "model_providers = { opensoul = { name = \"x\" } }\n", "would not parse"},
		{"openclaw", "// JSON5 with a comment\n{ models: {} }\n", "not plain JSON"},
		{"openclaw", "[1, 2]\n", "does not hold a JSON object"},
	} {
		path := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(path, []byte(tc.old), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := fileOf(t, tc.client).Write(path, when)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: err %v, want %q", tc.client, tc.old, err, tc.want)
		}
		if read(t, path) != tc.old {
			t.Errorf("%s: a refused file was changed", tc.client)
		}
		if m, _ := filepath.Glob(path + ".bak-*"); len(m) > 0 {
			t.Errorf("%s: a refused write left a backup %v", tc.client, m)
		}
	}
}

func TestWriteOpenClaw(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	// No file yet: the entry alone, indented.
	fresh := filepath.Join(dir, "new", "openclaw.json")
	writeTwice(t, fileOf(t, "openclaw"), fresh)
	if got := read(t, fresh); got != fileOf(t, "openclaw").Text {
		t.Errorf("new file:\n%s", got)
	}

	// An existing config: other settings and providers stay, in order;
	// an older opensoul entry is replaced.
	path := filepath.Join(dir, "openclaw.json")
	old := `{
  "gateway": {
    "auth": {
      "token": "${OPENCLAW_GATEWAY_TOKEN}"
    }
  },
  "models": {
    "mode": "merge",
    "providers": {
      "local": {
        "baseUrl": "http://localhost:4000/v1",
        "api": "openai-completions"
      },
      "opensoul": {
        "baseUrl": "http://127.0.0.1:1111/anthropic"
      }
    }
  }
}
`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	w := writeTwice(t, fileOf(t, "openclaw"), path)
	if read(t, w.Backup) != old {
		t.Fatal("backup does not hold the old file")
	}
	got := read(t, path)
	if strings.Index(got, `"gateway"`) > strings.Index(got, `"models"`) || strings.Index(got, `"local"`) > strings.Index(got, `"opensoul"`) {
		t.Errorf("key order changed:\n%s", got)
	}
	var conf struct {
		Gateway struct{ Auth struct{ Token string } }
		Models  struct {
			Mode      string
			Providers map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(got), &conf); err != nil {
		t.Fatal(err)
	}
	entry := conf.Models.Providers["opensoul"]
	if conf.Gateway.Auth.Token != "${OPENCLAW_GATEWAY_TOKEN}" || conf.Models.Mode != "merge" || conf.Models.Providers["local"]["api"] != "openai-completions" ||
		entry["baseUrl"] != gw+"/anthropic" || entry["apiKey"] != "${OPENSOUL_GATEWAY_TOKEN}" || entry["api"] != "anthropic-messages" {
		t.Errorf("merged config:\n%s", got)
	}
}

// TestWriteFollowsSymlink: OpenClaw replaces its config atomically, so a
// symlinked config must have its target replaced, the link kept.
func TestWriteFollowsSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "real.json")
	if err := os.WriteFile(target, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "openclaw.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := fileOf(t, "openclaw").Write(link, when); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced")
	}
	if !strings.Contains(read(t, target), "opensoul") {
		t.Errorf("the target was not written")
	}
}
