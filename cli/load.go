package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"gopkg.in/yaml.v3"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// koanfDelim separates key path segments inside koanf. It is not "."
// because model refs used as map keys contain dots (claude-sonnet-4.5).
const koanfDelim = "\x1f"

// Environment variables that are not config keys.
const (
	envStateDir     = "OPENSOUL_STATE_DIR"
	envConfigPath   = "OPENSOUL_CONFIG_PATH"
	envGatewayToken = "OPENSOUL_GATEWAY_TOKEN"
	envPrefix       = "OPENSOUL_"
)

// statePath resolves the state dir: --state-dir, $OPENSOUL_STATE_DIR, ~/.opensoul.
func (a *app) statePath() (string, error) {
	if a.stateDir != "" {
		return filepath.Abs(a.stateDir)
	}
	if d := a.environ[envStateDir]; d != "" {
		return filepath.Abs(d)
	}
	home := a.environ["HOME"]
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find a home directory for the state dir; set %s: %w", envStateDir, err)
		}
		home = h
	}
	return filepath.Join(home, ".opensoul"), nil
}

// configFilePath resolves the config file: --config, $OPENSOUL_CONFIG_PATH,
// <state>/opensoul.yaml.
func (a *app) configFilePath(stateDir string) string {
	if a.configPath != "" {
		return a.configPath
	}
	if p := a.environ[envConfigPath]; p != "" {
		return p
	}
	return filepath.Join(stateDir, "opensoul.yaml")
}

// load merges every config source once: defaults, opensoul.yaml, .env
// files, the process environment, then (by the caller) flags.
func (a *app) load() error {
	if a.loaded {
		return nil
	}
	stateDir, err := a.statePath()
	if err != nil {
		return err
	}
	a.st = store.New(stateDir)
	a.cfgFile = a.configFilePath(stateDir)

	dotState, err := readDotEnvFile(filepath.Join(stateDir, ".env"))
	if err != nil {
		return err
	}

	k := koanf.New(koanfDelim)
	if err := k.Load(structs.Provider(DefaultConfig(), "koanf"), nil); err != nil {
		return fmt.Errorf("load defaults: %w", err)
	}
	raw, err := os.ReadFile(a.cfgFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := checkYAML(a.cfgFile, raw); err != nil {
			return err
		}
		if err := k.Load(rawbytes.Provider(raw), kyaml.Parser()); err != nil {
			return fmt.Errorf("%s: %w", a.cfgFile, err)
		}
	}
	dotLocal, err := a.cwdDotEnv(k, stateDir)
	if err != nil {
		return err
	}
	// OPENSOUL_* overrides: .env files below the process environment.
	for _, src := range []struct {
		name string
		vars map[string]string
	}{{filepath.Join(stateDir, ".env"), dotState}, {"./.env", dotLocal}, {"environment", a.environ}} {
		if err := applyEnvOverrides(k, src.name, src.vars); err != nil {
			return err
		}
	}

	// ${VAR} lookups see the process env, then ./.env, then <state>/.env,
	// then env.vars from the config itself.
	lookup := func(name string) (string, bool) {
		for _, m := range []map[string]string{a.environ, dotLocal, dotState} {
			if v, ok := m[name]; ok {
				return v, true
			}
		}
		v, ok := k.Get("env" + koanfDelim + "vars" + koanfDelim + name).(string)
		return v, ok
	}
	for _, key := range k.Keys() {
		if s, ok := k.Get(key).(string); ok && strings.Contains(s, "${") {
			k.Set(key, expandVars(s, lookup))
		}
	}

	cfg := Config{}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", a.cfgFile, err)
	}
	a.cfg = cfg
	a.st.Sessions = sessionLimits(cfg)
	a.env = a.collectEnv(stateDir, dotLocal, dotState)
	a.tokenWarnings = dropClientTokens(&a.cfg, a.env)
	for _, w := range a.tokenWarnings {
		a.warnf("%s", w)
	}
	a.loaded = true
	return nil
}

// expandVars replaces ${VAR} and ${VAR:-default}; an unset variable
// expands to its default or "".
func expandVars(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name, def, _ := strings.Cut(s[i+2:i+j], ":-")
		if v, ok := lookup(name); ok && v != "" {
			b.WriteString(v)
		} else {
			b.WriteString(def)
		}
		s = s[i+j+1:]
	}
}

// applyEnvOverrides maps OPENSOUL_SECTION__KEY=value onto config keys
// (OPENSOUL_GATEWAY__LISTEN → gateway.listen; segments match the YAML's
// camelCase keys case-insensitively, underscores inside a segment ignored).
func applyEnvOverrides(k *koanf.Koanf, source string, vars map[string]string) error {
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == envGatewayToken {
			k.Set(strings.Join([]string{"gateway", "auth", "token"}, koanfDelim), vars[name])
			continue
		}
		if !strings.HasPrefix(name, envPrefix) || !strings.Contains(name, "__") {
			continue
		}
		segs := strings.Split(strings.TrimPrefix(name, envPrefix), "__")
		path, t, err := schemaPath(reflect.TypeOf(Config{}), segs)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", source, name, err)
		}
		var v any = vars[name]
		if t.Kind() == reflect.Slice {
			parts := []string{}
			for _, p := range strings.Split(vars[name], ",") {
				if p = strings.TrimSpace(p); p != "" {
					parts = append(parts, p)
				}
			}
			v = parts
		}
		k.Set(strings.Join(path, koanfDelim), v)
	}
	return nil
}

// schemaPath resolves env-style segments to the config's key path and
// the type found there.
func schemaPath(t reflect.Type, segs []string) ([]string, reflect.Type, error) {
	var path []string
	for _, seg := range segs {
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByKey(t, seg, true)
			if !ok {
				return nil, nil, fmt.Errorf("no config key %q under %q", strings.ToLower(seg), strings.Join(path, "."))
			}
			path = append(path, f.Tag.Get("koanf"))
			t = f.Type
		case reflect.Map:
			path = append(path, strings.ToLower(seg))
			t = t.Elem()
		default:
			return nil, nil, fmt.Errorf("%q is a value, it has no key %q", strings.Join(path, "."), seg)
		}
	}
	return path, t, nil
}

func fieldByKey(t reflect.Type, key string, fold bool) (reflect.StructField, bool) {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == key || (fold && norm(tag) == norm(key)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// remainField is t's field that collects the keys no other field names
// (koanf:",remain"), such as agents.<id>.
func remainField(t reflect.Type) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); strings.HasPrefix(f.Tag.Get("koanf"), ",remain") {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func schemaKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, t.Field(i).Tag.Get("koanf"))
	}
	return keys
}

// ConfigError names the file, line and key of a config problem.
type ConfigError struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
}

// checkYAML parses raw and checks every key and value kind against the
// Config schema, so mistakes are reported with file:line before merging.
func checkYAML(file string, raw []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, errEOF) {
			return nil
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	var errs []error
	walkYAML(file, root, reflect.TypeOf(Config{}), "", &errs)
	return errors.Join(errs...)
}

func walkYAML(file string, n *yaml.Node, t reflect.Type, key string, errs *[]error) {
	bad := func(n *yaml.Node, msg string) {
		k := key
		if k == "" {
			k = "(top level)"
		}
		*errs = append(*errs, &ConfigError{File: file, Line: n.Line, Col: n.Column, Key: k, Msg: msg})
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	join := func(k string) string {
		if key == "" {
			return k
		}
		return key + "." + k
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad(n, fmt.Sprintf("expected a mapping of keys, got %s", describeNode(n)))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if t.Kind() == reflect.Map {
				walkYAML(file, vn, t.Elem(), join(kn.Value), errs)
				continue
			}
			f, ok := fieldByKey(t, kn.Value, false)
			if !ok {
				if f, ok := remainField(t); ok { // a map of the other keys (agents.<id>)
					walkYAML(file, vn, f.Type.Elem(), join(kn.Value), errs)
					continue
				}
			}
			if !ok {
				msg := "unknown key"
				if s := suggest(kn.Value, schemaKeys(t)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", join(s))
				}
				saved := key
				key = join(kn.Value)
				bad(kn, msg)
				key = saved
				continue
			}
			walkYAML(file, vn, f.Type, join(kn.Value), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad(n, fmt.Sprintf("expected a list, got %s", describeNode(n)))
			return
		}
		for i, c := range n.Content {
			walkYAML(file, c, t.Elem(), fmt.Sprintf("%s[%d]", key, i), errs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			bad(n, fmt.Sprintf("expected %s, got %s", kindName(t), describeNode(n)))
			return
		}
		if n.Tag == "!!str" && strings.Contains(n.Value, "${") {
			return // checked after expansion
		}
		ok := true
		switch t.Kind() {
		case reflect.Int, reflect.Int64:
			ok = n.Tag == "!!int"
		case reflect.Float64:
			ok = n.Tag == "!!int" || n.Tag == "!!float"
		case reflect.Bool:
			ok = n.Tag == "!!bool"
		}
		if !ok {
			bad(n, fmt.Sprintf("expected %s, got %q", kindName(t), n.Value))
		}
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return t.Kind().String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// collectEnv gathers credential-bearing environment values in DESIGN §3
// order; an earlier source is never overwritten by a later one.
func (a *app) collectEnv(stateDir string, dotLocal, dotState map[string]string) gateway.Env {
	env := gateway.Env{}
	add := func(source string, vars map[string]string) {
		for k, v := range vars {
			if _, ok := env[k]; !ok && v != "" {
				env[k] = gateway.EnvVar{Name: k, Value: v, Source: source}
			}
		}
	}
	add("process", a.environ)
	add("./.env", dotLocal)
	add(filepath.Join(stateDir, ".env"), dotState)
	add("config env.vars", a.cfg.Env.Vars)
	if a.cfg.Env.ShellEnv.Enabled {
		if vars, err := loginShellEnv(a.environ, a.cfg.Env.ShellEnv.TimeoutMs, gateway.KnownProviderVars(a.providerNames())); err != nil {
			fmt.Fprintf(a.stderr, "opensoul: warning: env.shellEnv: %v\n", err)
		} else {
			add("login shell", vars)
		}
	}
	return env
}

// providerNames lists configured providers, sorted.
func (a *app) providerNames() []string {
	names := make([]string, 0, len(a.cfg.Providers))
	for n := range a.cfg.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
