package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// pipelineDirs is a state dir and a working dir holding the files of one
// load; loadConfig reads nothing else but the environment it is given.
type pipelineDirs struct {
	t               *testing.T
	state, cwd, cfg string
}

func newPipelineDirs(t *testing.T) *pipelineDirs {
	d := t.TempDir()
	p := &pipelineDirs{t: t, state: filepath.Join(d, "state"), cwd: filepath.Join(d, "work")}
	p.cfg = filepath.Join(p.state, "opensoul.yaml")
	for _, dir := range []string{p.state, p.cwd} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *pipelineDirs) write(path, text string) {
	p.t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pipelineDirs) source(environ map[string]string, flags ...flagSetting) configSource {
	env := map[string]string{envStateDir: p.state, "HOME": filepath.Dir(p.state)}
	for k, v := range environ {
		env[k] = v
	}
	return configSource{Environ: env, Dir: p.cwd, Flags: flags}
}

// TestLayerPrecedence sets one key in every combination of the five
// layers above the defaults and checks that the highest layer wins and
// that --sources names that layer, its file and its variable or flag:
// default < yaml < <state>/.env < ./.env < environment < flag.
func TestLayerPrecedence(t *testing.T) {
	t.Parallel()
	type layerCase struct {
		name string
		set  func(p *pipelineDirs, env map[string]string, flags *[]flagSetting, value string)
		src  func(p *pipelineDirs) Source
	}
	layers := []layerCase{
		{"yaml", func(p *pipelineDirs, _ map[string]string, _ *[]flagSetting, v string) {
			p.write(p.cfg, "gateway:\n  listen: "+v+"\n")
		}, func(p *pipelineDirs) Source { return Source{Layer: layerYAML, File: p.cfg} }},
		{"state dotenv", func(p *pipelineDirs, _ map[string]string, _ *[]flagSetting, v string) {
			p.write(filepath.Join(p.state, ".env"), "OPENSOUL_GATEWAY__LISTEN="+v+"\n")
		}, func(p *pipelineDirs) Source {
			return Source{Layer: layerDotenv, File: filepath.Join(p.state, ".env"), Name: "OPENSOUL_GATEWAY__LISTEN"}
		}},
		{"cwd dotenv", func(p *pipelineDirs, _ map[string]string, _ *[]flagSetting, v string) {
			p.write(filepath.Join(p.cwd, ".env"), "OPENSOUL_GATEWAY__LISTEN="+v+"\n")
		}, func(p *pipelineDirs) Source {
			return Source{Layer: layerDotenv, File: filepath.Join(p.cwd, ".env"), Name: "OPENSOUL_GATEWAY__LISTEN"}
		}},
		{"env", func(_ *pipelineDirs, env map[string]string, _ *[]flagSetting, v string) {
			env["OPENSOUL_GATEWAY__LISTEN"] = v
		}, func(*pipelineDirs) Source { return Source{Layer: layerEnv, Name: "OPENSOUL_GATEWAY__LISTEN"} }},
		{"flag", func(_ *pipelineDirs, _ map[string]string, flags *[]flagSetting, v string) {
			*flags = append(*flags, flagSetting{Flag: "--listen", Key: "gateway.listen", Value: v})
		}, func(*pipelineDirs) Source { return Source{Layer: layerFlag, Name: "--listen"} }},
	}
	for mask := 0; mask < 1<<len(layers); mask++ {
		var names []string
		for i, l := range layers {
			if mask&(1<<i) != 0 {
				names = append(names, l.name)
			}
		}
		t.Run(cmpOrNone(strings.Join(names, "+")), func(t *testing.T) {
			t.Parallel()
			p := newPipelineDirs(t)
			env, flags := map[string]string{}, []flagSetting(nil)
			want, wantSrc := "127.0.0.1:18789", Source{Layer: layerDefault}
			for i, l := range layers {
				if mask&(1<<i) != 0 {
					v := fmt.Sprintf("127.0.0.1:%d", 1000+i)
					l.set(p, env, &flags, v)
					want, wantSrc = v, l.src(p)
				}
			}
			got, err := loadConfig(p.source(env, flags...))
			if err != nil {
				t.Fatal(err)
			}
			if got.Cfg.Gateway.Listen != want {
				t.Errorf("gateway.listen = %q, want %q", got.Cfg.Gateway.Listen, want)
			}
			if s := got.Sources["gateway.listen"]; s != wantSrc {
				t.Errorf("source = %+v, want %+v", s, wantSrc)
			}
		})
	}
}

func cmpOrNone(s string) string {
	if s == "" {
		return "defaults only"
	}
	return s
}

// TestSourcesOfTypedKeys: a list, a number and a map entry whose key holds
// dots, each from a different layer, arrive typed and named.
func TestSourcesOfTypedKeys(t *testing.T) {
	t.Parallel()
	p := newPipelineDirs(t)
	p.write(p.cfg, "auth:\n  order:\n    anthropic: [anthropic:a, anthropic:b]\nagents:\n  defaults:\n    models:\n      anthropic/claude-sonnet-4.5:\n        alias: s45\n")
	p.write(filepath.Join(p.state, ".env"), "OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\n")
	l, err := loadConfig(p.source(map[string]string{"OPENSOUL_GATEWAY__MAX_BODY_BYTES": "2048"},
		flagSetting{Flag: "--set", Key: "auth.order.openai", Value: "openai:x, openai:y"},
		flagSetting{Flag: "--set", Key: "agents.defaults.models.anthropic/claude-haiku-4.5.alias", Value: "h45"},
		flagSetting{Flag: "--set", Key: "agents.cron.attrs.team", Value: "blue"}))
	if err != nil {
		t.Fatal(err)
	}
	c := l.Cfg
	if got := c.Auth.Order["anthropic"]; len(got) != 2 || got[1] != "anthropic:b" {
		t.Errorf("auth.order.anthropic = %v", got)
	}
	if got := c.Auth.Order["openai"]; len(got) != 2 || got[0] != "openai:x" || got[1] != "openai:y" {
		t.Errorf("auth.order.openai = %q", got)
	}
	if c.Gateway.MaxBodyBytes != 2048 || c.Gateway.Auth.Token != fixGatewayToken {
		t.Errorf("maxBodyBytes %d, token set %v", c.Gateway.MaxBodyBytes, c.Gateway.Auth.Token != "")
	}
	if c.Agents.Defaults.Models["anthropic/claude-sonnet-4.5"].Alias != "s45" || c.Agents.Defaults.Models["anthropic/claude-haiku-4.5"].Alias != "h45" {
		t.Errorf("models = %+v", c.Agents.Defaults.Models)
	}
	if got := c.Agents.Agents["cron"].Attrs["team"]; got != "blue" {
		t.Errorf("agents.cron.attrs.team = %q", got)
	}
	for key, want := range map[string]string{
		"agents.cron.attrs.team": "flag --set",
		"auth.order.anthropic":   "yaml " + p.cfg,
		"auth.order.openai":      "flag --set",
		"gateway.maxBodyBytes":   "env OPENSOUL_GATEWAY__MAX_BODY_BYTES",
		"gateway.auth.token":     "dotenv " + filepath.Join(p.state, ".env") + " OPENSOUL_GATEWAY_TOKEN",
		"agents.defaults.models.anthropic/claude-sonnet-4.5.alias": "yaml " + p.cfg,
		"agents.defaults.models.anthropic/claude-haiku-4.5.alias":  "flag --set",
		"gateway.bodyBudgetBytes":                                  "default",
	} {
		if got := l.Sources[key].String(); got != want {
			t.Errorf("source of %s = %q, want %q", key, got, want)
		}
	}
}

// TestConfigShowSources: the command prints every key with its value and
// source, text and JSON, with secrets redacted there too.
func TestConfigShowSources(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.writeFile("opensoul.yaml", "auth:\n  order:\n    anthropic: [anthropic:work]\nproviders:\n  openai:\n    apiKey: "+fixOpenAIKey+"\n")
	e.writeFile(".env", "OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\n")
	e.vars["OPENSOUL_LOG__LEVEL"] = "debug"
	e.vars["OPENSOUL_AGENTS__OPS__ATTRS__TEAM"] = "red"
	out := e.ok("", "config", "show", "--sources", "--set", "gateway.listen=127.0.0.1:8787")
	home := e.vars["HOME"]
	for _, want := range []string{
		"gateway.listen", "127.0.0.1:8787", "flag --set",
		"auth.order.anthropic", `["anthropic:work"]`, "yaml ~/" + strings.TrimPrefix(cfg, home+"/"),
		"log.level", "env OPENSOUL_LOG__LEVEL",
		"gateway.auth.token", "<redacted>", "dotenv ~/" + strings.TrimPrefix(filepath.Join(e.state, ".env"), home+"/") + " OPENSOUL_GATEWAY_TOKEN",
		"providers.openai.apiKey",
		"agents.ops.attrs.team", "env OPENSOUL_AGENTS__OPS__ATTRS__TEAM",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--sources lacks %q:\n%s", want, out)
		}
	}
	line := func(key string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == key {
				return l
			}
		}
		return ""
	}
	if l := line("gateway.listen"); !strings.HasSuffix(l, "flag --set") {
		t.Errorf("gateway.listen line: %q", l)
	}
	if l := line("gateway.maxBodyBytes"); !strings.HasSuffix(l, "default") {
		t.Errorf("gateway.maxBodyBytes line: %q", l)
	}
	var rows []sourceRow
	if err := json.Unmarshal([]byte(e.ok("", "config", "show", "--sources", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	byKey := map[string]sourceRow{}
	for _, r := range rows {
		byKey[r.Key] = r
	}
	if r := byKey["providers.openai.apiKey"]; r.Value != redactedValue || r.Layer != layerYAML || r.File != cfg {
		t.Errorf("providers.openai.apiKey row: %+v", r)
	}
	if r := byKey["log.level"]; r.Value != "debug" || r.Layer != layerEnv || r.Name != "OPENSOUL_LOG__LEVEL" {
		t.Errorf("log.level row: %+v", r)
	}
	e.assertNoSecrets()
}

// TestSetNamesTheBadKey: --set with an unknown key, a section, a bad value
// or no '=' is a usage error (exit 2) naming the key and the flag.
func TestSetNamesTheBadKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ set, want string }{
		{"gateway.lisen=127.0.0.1:1", `no config key "gateway.lisen" (did you mean "gateway.listen"?)`},
		{"gateway.maxBodyBytes=lots", `--set gateway.maxBodyBytes=lots: want a whole number`},
		{"env.shellEnv.enabled=maybe", `--set env.shellEnv.enabled=maybe: want true or false`},
		{"log=debug", `"log" is a section`},
		{"log.level=loud", `log.level: want debug, info, warn or error, got "loud" (set by flag --set)`},
		{"gateway.listen", `want key=value`},
	} {
		_, errs, code := e.run("", "config", "validate", "--set", tc.set)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("--set %s: exit %d, %q; want %q", tc.set, code, errs, tc.want)
		}
	}
	if _, errs, code := e.run("", "gateway", "--listen", "nowhere"); code != 2 || !strings.Contains(errs, `gateway.listen: want host:port, got "nowhere" (set by flag --listen)`) {
		t.Errorf("gateway --listen nowhere: exit %d, %q", code, errs)
	}
}

// TestRefusedReloadKeepsEverythingOld: on a non-loopback listener a
// config edit that removes the gateway token is refused. Everything the
// load would have changed stays as it was, the credential read from
// <state>/.env included, until an acceptable edit comes.
func TestRefusedReloadKeepsEverythingOld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	withToken := "gateway:\n  auth:\n    token: " + fixGatewayToken + "\nlog:\n  level: info\n"
	e.writeFile("opensoul.yaml", withToken)
	e.writeFile(".env", "ANTHROPIC_API_KEY=sk-ant-api03-OLDkey\n")
	environ := map[string]string{envStateDir: e.state, "HOME": e.vars["HOME"]}
	a := &app{stdin: strings.NewReader(""), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, environ: environ,
		flagSets: []flagSetting{{Flag: "--listen", Key: "gateway.listen", Value: "0.0.0.0:0"}}}
	g, err := a.buildGateway(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	w := newGatewayWatcher(a, g, runInfo{Listen: g.listen})
	before := a.cur

	// The token goes, the log level and the .env key change with it.
	e.writeFile("opensoul.yaml", "log:\n  level: debug\n")
	e.writeFile(".env", "ANTHROPIC_API_KEY=sk-ant-api03-NEWkey\n")
	w.reloadConfig()
	if !strings.Contains(a.stderr.(*lockedBuffer).String(), "config change refused") {
		t.Fatalf("the tokenless config was not refused:\n%s", a.stderr.(*lockedBuffer).String())
	}
	if a.cur != before || a.cfg.Gateway.Auth.Token != fixGatewayToken || a.cfg.Log.Level != "info" {
		t.Errorf("config in force changed: token kept %v, log.level %q", a.cfg.Gateway.Auth.Token == fixGatewayToken, a.cfg.Log.Level)
	}
	if v := a.env["ANTHROPIC_API_KEY"].Value; v != "sk-ant-api03-OLDkey" {
		t.Errorf("app env after the refused reload: %q", v)
	}
	if v := g.srv.Env()["ANTHROPIC_API_KEY"].Value; v != "sk-ant-api03-OLDkey" {
		t.Errorf("gateway env after the refused reload: %q", v)
	}
	if g.level.Level().String() != "INFO" {
		t.Errorf("log level after the refused reload: %v", g.level.Level())
	}

	// An acceptable edit puts all of it in force at once.
	e.writeFile("opensoul.yaml", strings.Replace(withToken, "info", "debug", 1))
	w.reloadConfig()
	if a.cur == before || a.cfg.Log.Level != "debug" || a.env["ANTHROPIC_API_KEY"].Value != "sk-ant-api03-NEWkey" || g.srv.Env()["ANTHROPIC_API_KEY"].Value != "sk-ant-api03-NEWkey" {
		t.Errorf("the accepted reload was not applied whole: log.level %q, env %q", a.cfg.Log.Level, a.env["ANTHROPIC_API_KEY"].Value)
	}
}

// TestLoadConfigIsPure: the same files and environment give the same
// value, and the process environment is not read.
func TestLoadConfigIsPure(t *testing.T) {
	t.Setenv("OPENSOUL_GATEWAY__LISTEN", "127.0.0.1:4444") // must not be seen
	p := newPipelineDirs(t)
	p.write(p.cfg, "gateway:\n  listen: ${AT:-127.0.0.1:5}\n")
	a, err := loadConfig(p.source(map[string]string{"AT": "127.0.0.1:6"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadConfig(p.source(map[string]string{"AT": "127.0.0.1:6"}))
	if err != nil {
		t.Fatal(err)
	}
	if a.Cfg.Gateway.Listen != "127.0.0.1:6" || b.Cfg.Gateway.Listen != a.Cfg.Gateway.Listen {
		t.Errorf("listen %q then %q, want 127.0.0.1:6", a.Cfg.Gateway.Listen, b.Cfg.Gateway.Listen)
	}
}

// FuzzConfigFlag: any --set key=value either loads into the flag layer
// under a key the schema knows, named by its flag, or fails as a
// FlagError that names the key; it never panics.
func FuzzConfigFlag(f *testing.F) {
	for _, s := range [][2]string{
		{"gateway.listen", "127.0.0.1:1"}, {"gateway.maxBodyBytes", "lots"}, {"log", "x"},
		{"agents.defaults.models.anthropic/claude-sonnet-4.5.alias", "s"}, {"auth.order.anthropic", "a, b,"},
		{"agents.cron.attrs.team", "blue"}, {"providers..baseUrl", "x"}, {"gateway.listen.x", "1"}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		ly, err := flagLayer([]flagSetting{{Flag: "--set", Key: key, Value: value}})
		if err != nil {
			var fe *FlagError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "--set "+key+"=") {
				t.Fatalf("error does not name --set %q: %v", key, err)
			}
			return
		}
		keys := ly.k.Keys()
		if len(keys) != 1 || ly.names[keys[0]] != "--set" {
			t.Fatalf("--set %q=%q loaded keys %q", key, value, keys)
		}
	})
}

// TestEveryCommandTakesSet: --set is part of every command's flags, so
// any command runs with a config key changed for that run.
func TestEveryCommandTakesSet(t *testing.T) {
	t.Parallel()
	a := newApp(strings.NewReader(""), &lockedBuffer{}, &lockedBuffer{}, nil)
	var walk func(cmd *ffcli.Command, path string)
	walk = func(cmd *ffcli.Command, path string) {
		if cmd.FlagSet == nil || cmd.FlagSet.Lookup("set") == nil {
			t.Errorf("%s has no --set", path)
		}
		for _, sub := range cmd.Subcommands {
			walk(sub, path+" "+sub.Name)
		}
	}
	walk(a.rootCmd(), "opensoul")
	e := newEnv(t)
	out := e.ok("", "--set", "agents.defaults.model.primary=openai/gpt-6", "models", "list", "--set", "log.level=warn")
	if !strings.Contains(out, "openai/gpt-6") {
		t.Errorf("models list with --set primary:\n%s", out)
	}
}
