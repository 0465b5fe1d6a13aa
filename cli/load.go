package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"

	"github.com/opensoul/opensoul/cli/dotenv"
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

// configSource is everything loadConfig reads besides files: the
// environment as a value, never os.Getenv, and the command line.
type configSource struct {
	Environ    map[string]string
	ConfigPath string        // --config; "": $OPENSOUL_CONFIG_PATH, else <state>/opensoul.yaml
	StateDir   string        // --state-dir; "": $OPENSOUL_STATE_DIR, else ~/.opensoul
	Flags      []flagSetting // --set and key-bound command flags, in command-line order
	Dir        string        // the working directory whose .env is read; "": the process's
}

// loadedConfig is one load's outcome: the typed config and where each
// key came from. A reload builds a new one and swaps it in only when the
// gateway accepted it.
type loadedConfig struct {
	Cfg      Config
	File     string // the config file (it may not exist)
	StateDir string
	Env      gateway.Env       // credential-bearing environment, DESIGN §3 order
	Sources  map[string]Source // dotted key → where its value came from
	// Warnings are printed by the caller: environment and config values
	// dropped because they hold a client token, a failed login-shell import.
	Warnings []string
	// CwdDropped names the ./.env variables ignored because env.cwdDotenv
	// is off (the caller warns once per process).
	CwdDropped []string
}

// loadConfig merges, lowest first: built-in defaults, the YAML file, the
// <state>/.env and ./.env files, the environment, then flags (DESIGN §3),
// expands ${VAR}, and validates. It reads files and nothing of the
// process: the environment comes in src. It changes nothing.
func loadConfig(src configSource) (*loadedConfig, error) {
	stateDir, err := src.statePath()
	if err != nil {
		return nil, err
	}
	l := &loadedConfig{StateDir: stateDir, File: src.configFile(stateDir), Sources: map[string]Source{}}
	p, err := readLayers(src, l)
	if err != nil {
		return nil, err
	}
	k := koanf.New(koanfDelim)
	for _, ly := range p.layers {
		if err := k.Merge(ly.k); err != nil {
			return nil, fmt.Errorf("%s: %w", ly.src, err)
		}
		ly.sources(l.Sources)
	}
	expandAll(k, p.lookup(k))
	if err := k.UnmarshalWithConf("", &l.Cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := l.Cfg.Validate(); err != nil {
		return nil, l.nameSources(err)
	}
	l.Env = collectEnv(src.Environ, l, p.dotLocal, p.dotState)
	l.Warnings = append(l.Warnings, dropClientTokens(&l.Cfg, l.Env)...)
	return l, nil
}

// nameSources adds to each invalid key set by a variable or flag where
// it was set; the rest came from the config file, which the error names.
func (l *loadedConfig) nameSources(err error) error {
	var inv *InvalidError
	byFlag := false
	if errors.As(err, &inv) {
		for _, f := range inv.Fields {
			if src, ok := l.Sources[f.Key]; ok && src.Layer != layerYAML && src.Layer != layerDefault {
				f.Msg += " (set by " + src.String() + ")"
				byFlag = byFlag || src.Layer == layerFlag
			}
		}
	}
	err = fmt.Errorf("%s: %w", l.File, err)
	if byFlag {
		return &FlagError{err}
	}
	return err
}

// pipeline is the layers of one load, lowest first, and the variable
// maps ${VAR} and the credential environment read.
type pipeline struct {
	layers             []*layer
	environ            map[string]string
	dotLocal, dotState map[string]string
}

// readLayers reads every source into its own layer. ./.env is read last
// because whether it may hold secrets (env.cwdDotenv) is decided by the
// other layers: a ./.env cannot unlock itself.
func readLayers(src configSource, l *loadedConfig) (*pipeline, error) {
	p := &pipeline{environ: src.Environ}
	def, err := defaultsLayer()
	if err != nil {
		return nil, err
	}
	yml, err := yamlLayer(l.File)
	if err != nil {
		return nil, err
	}
	statePath := filepath.Join(l.StateDir, ".env")
	if p.dotState, err = dotenv.ReadFile(statePath); err != nil {
		return nil, err
	}
	dotState, err := envLayer(Source{Layer: layerDotenv, File: statePath}, p.dotState)
	if err != nil {
		return nil, err
	}
	environ, err := envLayer(Source{Layer: layerEnv}, src.Environ)
	if err != nil {
		return nil, err
	}
	flags, err := flagLayer(src.Flags)
	if err != nil {
		return nil, err
	}
	others := []*layer{def, yml, dotState, environ, flags}
	localPath := filepath.Join(src.Dir, ".env")
	if p.dotLocal, l.CwdDropped, err = cwdDotEnv(localPath, statePath, merged(others)); err != nil {
		return nil, err
	}
	if src.Dir == "" {
		localPath = "./.env"
	}
	dotLocal, err := envLayer(Source{Layer: layerDotenv, File: localPath}, p.dotLocal)
	if err != nil {
		return nil, err
	}
	p.layers = []*layer{def, yml, dotState, dotLocal, environ, flags}
	return p, nil
}

func defaultsLayer() (*layer, error) {
	k := koanf.New(koanfDelim)
	if err := k.Load(structs.Provider(DefaultConfig(), "koanf"), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	return &layer{src: Source{Layer: layerDefault}, k: k}, nil
}

// yamlLayer is the config file, checked against the schema first so that
// every mistake names its line; a missing file is an empty layer.
func yamlLayer(file string) (*layer, error) {
	ly := &layer{src: Source{Layer: layerYAML, File: file}, k: koanf.New(koanfDelim)}
	raw, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ly, nil
	case err != nil:
		return nil, err
	}
	if err := checkYAML(file, raw); err != nil {
		return nil, err
	}
	if err := ly.k.Load(rawbytes.Provider(raw), kyaml.Parser()); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ly, nil
}

// merged is the layers merged into one koanf, lowest first.
func merged(layers []*layer) *koanf.Koanf {
	k := koanf.New(koanfDelim)
	for _, ly := range layers {
		k.Merge(ly.k)
	}
	return k
}

// lookup resolves ${VAR}: the environment, then ./.env, then <state>/.env,
// then env.vars from the config itself.
func (p *pipeline) lookup(k *koanf.Koanf) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for _, m := range []map[string]string{p.environ, p.dotLocal, p.dotState} {
			if v, ok := m[name]; ok {
				return v, true
			}
		}
		v, ok := k.Get("env" + koanfDelim + "vars" + koanfDelim + name).(string)
		return v, ok
	}
}

// expandAll expands ${VAR} in every string value of k.
func expandAll(k *koanf.Koanf, lookup func(string) (string, bool)) {
	for _, key := range k.Keys() {
		if s, ok := k.Get(key).(string); ok && strings.Contains(s, "${") {
			k.Set(key, expandVars(s, lookup))
		}
	}
}

// statePath resolves the state dir: --state-dir, $OPENSOUL_STATE_DIR, ~/.opensoul.
func (src configSource) statePath() (string, error) {
	if src.StateDir != "" {
		return filepath.Abs(src.StateDir)
	}
	if d := src.Environ[envStateDir]; d != "" {
		return filepath.Abs(d)
	}
	home := src.Environ["HOME"]
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find a home directory for the state dir; set %s: %w", envStateDir, err)
		}
		home = h
	}
	return filepath.Join(home, ".opensoul"), nil
}

// configFile resolves the config file: --config, $OPENSOUL_CONFIG_PATH,
// <state>/opensoul.yaml.
func (src configSource) configFile(stateDir string) string {
	if src.ConfigPath != "" {
		return src.ConfigPath
	}
	if p := src.Environ[envConfigPath]; p != "" {
		return p
	}
	return filepath.Join(stateDir, "opensoul.yaml")
}

// configSource is what this command line gives loadConfig.
func (a *app) configSource() configSource {
	return configSource{Environ: a.environ, ConfigPath: a.configPath, StateDir: a.stateDir, Flags: slices.Clone(a.flagSets)}
}

// statePath is the state dir this command line names.
func (a *app) statePath() (string, error) { return a.configSource().statePath() }

// load loads the config once per command (loadConfig) and puts it in use.
func (a *app) load() error {
	if a.cur != nil {
		return nil
	}
	l, err := loadConfig(a.configSource())
	var flagErr *FlagError
	if errors.As(err, &flagErr) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	a.use(l)
	return nil
}

// use puts a loaded config in force for the commands and prints its
// warnings. The store is made once: a reloaded config keeps the store
// the running gateway holds.
func (a *app) use(l *loadedConfig) {
	a.cur = l
	a.cfg, a.cfgFile, a.env, a.tokenWarnings = l.Cfg, l.File, l.Env, l.Warnings
	if a.st == nil || a.st.Dir != l.StateDir {
		a.st = store.New(l.StateDir)
		a.st.Sessions = sessionLimits(l.Cfg)
	}
	for _, w := range l.Warnings {
		a.warnf("%s", w)
	}
	if len(l.CwdDropped) > 0 && !a.cwdWarned {
		a.cwdWarned = true
		a.warnf("ignoring %s in ./.env: provider keys and gateway tokens come from the environment, %s or env.vars (set env.cwdDotenv: true to read them from the working directory)",
			strings.Join(l.CwdDropped, ", "), filepath.Join(l.StateDir, ".env"))
	}
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

// collectEnv gathers credential-bearing environment values in DESIGN §3
// order; an earlier source is never overwritten by a later one.
func collectEnv(environ map[string]string, l *loadedConfig, dotLocal, dotState map[string]string) gateway.Env {
	env := gateway.Env{}
	add := func(source string, vars map[string]string) {
		for k, v := range vars {
			if _, ok := env[k]; !ok && v != "" {
				env[k] = gateway.EnvVar{Name: k, Value: v, Source: source}
			}
		}
	}
	add("process", environ)
	add("./.env", dotLocal)
	add(filepath.Join(l.StateDir, ".env"), dotState)
	add("config env.vars", l.Cfg.Env.Vars)
	if l.Cfg.Env.ShellEnv.Enabled {
		if vars, err := loginShellEnv(environ, l.Cfg.Env.ShellEnv.TimeoutMs, gateway.KnownProviderVars(l.Cfg.providerNames())); err != nil {
			l.Warnings = append(l.Warnings, fmt.Sprintf("env.shellEnv: %v", err))
		} else {
			add("login shell", vars)
		}
	}
	return env
}

// providerNames lists configured providers, sorted.
func (c *Config) providerNames() []string {
	return slices.Sorted(maps.Keys(c.Providers))
}

// providerNames lists configured providers, sorted.
func (a *app) providerNames() []string { return a.cfg.providerNames() }
