package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		yaml     string
		stateEnv string
		localEnv bool
		procEnv  map[string]string
		args     []string
		want     string
	}{
		{"default", "", "", false, nil, nil, "127.0.0.1:18789"},
		{"yaml", "gateway:\n  listen: 127.0.0.1:1001\n", "", false, nil, nil, "127.0.0.1:1001"},
		{".env over yaml", "gateway:\n  listen: 127.0.0.1:1001\n", "OPENSOUL_GATEWAY__LISTEN=127.0.0.1:1002\n", false, nil, nil, "127.0.0.1:1002"},
		{"process over .env", "gateway:\n  listen: 127.0.0.1:1001\n", "OPENSOUL_GATEWAY__LISTEN=127.0.0.1:1002\n", false, map[string]string{"OPENSOUL_GATEWAY__LISTEN": "127.0.0.1:1003"}, nil, "127.0.0.1:1003"},
		{"${VAR} from .env", "gateway:\n  listen: ${LISTEN_AT:-127.0.0.1:9}\n", "LISTEN_AT=127.0.0.1:1004\n", false, nil, nil, "127.0.0.1:1004"},
		{"${VAR:-default}", "gateway:\n  listen: ${NOT_SET:-127.0.0.1:1005}\n", "", false, nil, nil, "127.0.0.1:1005"},
		{"--config flag", "", "", false, map[string]string{"OPENSOUL_CONFIG_PATH": "/nonexistent.yaml"}, []string{"--config", "ALT"}, "127.0.0.1:1006"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.yaml != "" {
				e.writeFile("opensoul.yaml", tc.yaml)
			}
			if tc.stateEnv != "" {
				e.writeFile(".env", tc.stateEnv)
			}
			for k, v := range tc.procEnv {
				e.vars[k] = v
			}
			args := []string{"config", "show", "--json"}
			for i, a := range tc.args {
				if a == "ALT" {
					tc.args[i] = e.writeFile("alt.yaml", "gateway:\n  listen: 127.0.0.1:1006\n")
				}
			}
			out := e.ok("", append(tc.args, args...)...)
			var m struct{ Gateway struct{ Listen string } }
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatal(err)
			}
			if m.Gateway.Listen != tc.want {
				t.Errorf("gateway.listen = %q, want %q", m.Gateway.Listen, tc.want)
			}
		})
	}
}

func TestEnvOverrideTypesAndCamelCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["OPENSOUL_GATEWAY__MAX_BODY_BYTES"] = "1024"
	e.vars["OPENSOUL_AGENTS__DEFAULTS__MODEL__FALLBACKS"] = "anthropic/claude-haiku-5,openai/gpt-6"
	e.vars["OPENSOUL_PROVIDERS__ACME__BASEURL"] = "http://127.0.0.1:9999"
	out := e.ok("", "config", "show", "--json")
	var c struct {
		Gateway struct{ MaxBodyBytes int64 }
		Agents  struct {
			Defaults struct{ Model struct{ Fallbacks []string } }
		}
		Providers map[string]struct{ BaseURL string }
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.Gateway.MaxBodyBytes != 1024 || len(c.Agents.Defaults.Model.Fallbacks) != 2 || c.Providers["acme"].BaseURL != "http://127.0.0.1:9999" || c.Providers["anthropic"].BaseURL != "https://api.anthropic.com" {
		t.Errorf("merged: %+v", c)
	}
	e.vars["OPENSOUL_GATEWAY__LISTNE"] = "x"
	_, errs, code := e.run("", "config", "validate")
	if code == 0 || !strings.Contains(errs, "OPENSOUL_GATEWAY__LISTNE") {
		t.Errorf("unknown env key: exit %d %q", code, errs)
	}
}

func TestConfigErrorsNameFileLineKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"broken yaml", "gateway:\n  listen: [\n", []string{"opensoul.yaml", "line"}},
		{"unknown key", "gateway:\n  lisen: 127.0.0.1:1\n", []string{"opensoul.yaml:2:3", "gateway.lisen", `did you mean "gateway.listen"`}},
		{"wrong type", "gateway:\n  maxBodyBytes: lots\n", []string{"opensoul.yaml:2:17", "gateway.maxBodyBytes", "whole number"}},
		{"list expected", "agents:\n  defaults:\n    model:\n      fallbacks: anthropic/x\n", []string{":4:18", "agents.defaults.model.fallbacks", "expected a list"}},
		{"bad value", "gateway:\n  listen: nowhere\n", []string{"gateway.listen", "host:port"}},
		{"bad model ref", "agents:\n  defaults:\n    model:\n      primary: sonnet\n", []string{"agents.defaults.model", "provider/model"}},
		{"bad provider url", "providers:\n  acme:\n    baseUrl: ftp://x\n", []string{"providers.acme.baseUrl"}},
		{"mapping expected", "auth: yes\n", []string{":1:7", "auth", "mapping"}},
		{"policy timeout", "policy:\n  timeoutMs: 0\n", []string{"policy.timeoutMs", "positive"}},
		{"module breaker", "gateway:\n  modules:\n    breakerFailures: 0\n", []string{"gateway.modules.breakerFailures", "positive"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.writeFile("opensoul.yaml", tc.yaml)
			_, errs, code := e.run("", "config", "validate")
			if code != 1 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("error %q lacks %q", errs, w)
				}
			}
		})
	}
}

func TestExampleConfigIsValidAndComplete(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "opensoul.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.writeFile("opensoul.yaml", string(raw))
	e.ok("", "config", "validate")
	// Every key of the schema is documented in the example.
	text := string(raw)
	var missing []string
	var walk func(m map[string]any, prefix string)
	walk = func(m map[string]any, prefix string) {
		for k, v := range m {
			if prefix == "providers." {
				continue // map of providers: documented by example
			}
			if !strings.Contains(text, k+":") {
				missing = append(missing, prefix+k)
			}
			if sub, ok := v.(map[string]any); ok && prefix+k != "providers" {
				walk(sub, prefix+k+".")
			}
		}
	}
	walk(DefaultConfig().asMap(), "")
	if len(missing) > 0 {
		t.Errorf("opensoul.yaml does not document: %v", missing)
	}
}

func TestNormalizeSecret(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"sk-abc\n":                       "sk-abc",
		"  'sk-abc'  ":                   "sk-abc",
		`export OPENAI_API_KEY="sk-abc"`: "sk-abc",
		"ANTHROPIC_API_KEY=sk-abc":       "sk-abc",
		"sk-ant-oat01-aaaa\nbbbb\r\n":    "sk-ant-oat01-aaaabbbb",
		"\"export X='sk'\"":              "",
		"sk abc":                         "",
		"":                               "",
		"sk-\x00abc":                     "",
		"sk-ü":                           "",
	} {
		got, err := normalizeSecret(in)
		if want == "" {
			if err == nil {
				t.Errorf("normalizeSecret(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("normalizeSecret(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestUpsertProfileText(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want, err string }{
		{"empty file", "", "auth:\n  profiles:\n    openai:manual:\n      provider: openai\n      mode: api_key\n", ""},
		{"no auth", "log:\n  level: info # x\n", "log:\n  level: info # x\nauth:\n  profiles:\n    openai:manual:\n      provider: openai\n      mode: api_key\n", ""},
		{"no trailing newline", "log:\n  level: info", "log:\n  level: info\nauth:\n  profiles:\n    openai:manual:\n      provider: openai\n      mode: api_key\n", ""},
		{"four-space indent", "auth:\n    profiles:\n        openai:a:\n            provider: openai\n            mode: api_key\n# tail\n", "auth:\n    profiles:\n        openai:a:\n            provider: openai\n            mode: api_key\n        openai:manual:\n          provider: openai\n          mode: api_key\n# tail\n", ""},
		{"flow style", "auth: {profiles: {}}\n", "", "flow style"},
		{"already there", "auth:\n  profiles:\n    openai:manual:\n      provider: openai\n      mode: api_key\n", "auth:\n  profiles:\n    openai:manual:\n      provider: openai\n      mode: api_key\n", ""},
		{"broken", "auth: [\n", "", "not changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := upsertProfileText("c.yaml", []byte(tc.in), "openai:manual", "openai", "api_key")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want error %q", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, tc.want)
			}
			if err := checkYAML("c.yaml", got); err != nil {
				t.Errorf("result does not validate: %v", err)
			}
		})
	}
}

func FuzzNormalizeSecret(f *testing.F) {
	for _, s := range []string{"sk-abc\n", `export K="sk"`, "'x'", " a b ", "sk-ant-oat01-a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := normalizeSecret(s)
		if err != nil {
			if got != "" {
				t.Fatal("value returned with an error")
			}
			return
		}
		if got == "" || strings.ContainsAny(got, " \t\r\n\"'") {
			t.Fatalf("normalizeSecret(%q) = %q", s, got)
		}
		if again, err := normalizeSecret(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, got, again, err)
		}
	})
}

func TestLoginShellImportTakesOnlyProviderKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shell := filepath.Join(t.TempDir(), "fakeshell")
	// A login shell that exports a provider key and something unrelated.
	script := "#!/bin/sh\nprintf 'ANTHROPIC_API_KEY=" + fixAnthropicKey + "\\0UNRELATED_SECRET=nope\\0PATH=/x\\0'\n"
	if err := os.WriteFile(shell, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	e.vars["SHELL"] = shell
	out := e.ok("", "models", "status")
	if strings.Contains(out, "from login shell") {
		t.Fatalf("shell env imported while disabled:\n%s", out)
	}
	e.writeFile("opensoul.yaml", "env:\n  shellEnv:\n    enabled: true\n    timeoutMs: 5000\n")
	out = e.ok("", "models", "status", "--json")
	if !strings.Contains(out, "env: ANTHROPIC_API_KEY (from login shell)") {
		t.Errorf("status:\n%s", out)
	}
	a := &app{environ: map[string]string{"SHELL": shell}}
	vars, err := loginShellEnv(a.environ, 5000, []string{"ANTHROPIC_API_KEY"})
	if err != nil || len(vars) != 1 || vars["ANTHROPIC_API_KEY"] != fixAnthropicKey {
		t.Errorf("imported %v, %v", len(vars), err)
	}
	e.assertNoSecrets()
}
