package cli

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	kmaps "github.com/knadh/koanf/maps"
	kenv "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
)

// Layer names, lowest precedence first (DESIGN §3 for the environment
// files; flags always last).
const (
	layerDefault = "default"
	layerYAML    = "yaml"
	layerDotenv  = "dotenv"
	layerEnv     = "env"
	layerFlag    = "flag"
)

// Source says where a config key's value came from: the layer, the file
// (yaml and dotenv) and the variable or flag that set it. It never holds
// a value.
type Source struct {
	Layer string `json:"layer"`
	File  string `json:"file,omitempty"`
	Name  string `json:"name,omitempty"` // OPENSOUL_… variable or --flag
}

func (s Source) String() string {
	parts := []string{s.Layer}
	for _, p := range []string{s.File, s.Name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// layer is one koanf source of the pipeline, loaded on its own so that
// every key it sets can be named in `config show --sources`.
type layer struct {
	src   Source
	k     *koanf.Koanf
	names map[string]string // koanf key → the variable or flag that set it
}

// sources records every key of the layer with where it came from.
func (l *layer) sources(into map[string]Source) {
	for _, key := range l.k.Keys() {
		s := l.src
		s.Name = l.names[key]
		into[displayKey(key)] = s
	}
}

// displayKey turns a koanf key into the dotted form users write.
func displayKey(key string) string { return strings.ReplaceAll(key, koanfDelim, ".") }

// flagSetting is one config key given on the command line: `--set
// key=value` or a command flag bound to a key (gateway --listen).
type flagSetting struct {
	Flag  string // "--set", "--listen"
	Key   string // as the user wrote it (dotted); resolved against Config
	Value string
}

// flagProvider is a koanf.Provider over the command line's config flags:
// basicflag's idea for ff's flag sets, reading only the flags the user
// gave, each bound to one config key, in command-line order (a later
// one wins). Every bad key or value is an error that names it.
type flagProvider struct {
	sets  []flagSetting
	names map[string]string // filled by Read: koanf key → flag
}

func (p *flagProvider) Read() (map[string]any, error) {
	flat := map[string]any{}
	var errs []error
	for _, s := range p.sets {
		path, t, err := resolveKey(strings.Split(s.Key, "."), false)
		if err == nil {
			var v any
			if v, err = coerce(t, s.Value); err == nil {
				key := strings.Join(path, koanfDelim)
				flat[key] = v
				p.names[key] = s.Flag
				continue
			}
		}
		what := s.Flag + " " + s.Key + "=" + s.Value
		if s.Flag != "--set" {
			what = s.Flag + " " + s.Value + " (" + s.Key + ")"
		}
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return kmaps.Unflatten(flat, koanfDelim), nil
}

func (p *flagProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("the flag provider has no bytes; use Read")
}

// FlagError is a config problem a flag caused (--set, --listen): a usage
// error, so the command exits 2.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

func flagLayer(sets []flagSetting) (*layer, error) {
	p := &flagProvider{sets: sets, names: map[string]string{}}
	k := koanf.New(koanfDelim)
	if err := k.Load(p, nil); err != nil {
		return nil, &FlagError{err}
	}
	return &layer{src: Source{Layer: layerFlag}, k: k, names: p.names}, nil
}

// envLayer maps variables (the process environment or a .env file's) onto
// config keys through koanf's env provider, fed the variables as a value:
// OPENSOUL_SECTION__KEY=value sets section.key, OPENSOUL_GATEWAY_TOKEN
// sets gateway.auth.token. Other variables are not config.
func envLayer(src Source, vars map[string]string) (*layer, error) {
	names := map[string]string{}
	var errs []error
	environ := make([]string, 0, len(vars))
	for _, n := range slices.Sorted(maps.Keys(vars)) {
		environ = append(environ, n+"="+vars[n])
	}
	p := kenv.Provider(koanfDelim, kenv.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			path, v, err := envSetting(name, value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", src.String(), name, err))
				return "", nil
			}
			key := strings.Join(path, koanfDelim)
			if key != "" {
				names[key] = name
			}
			return key, v
		},
	})
	k := koanf.New(koanfDelim)
	if err := k.Load(p, nil); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &layer{src: src, k: k, names: names}, nil
}

// envSetting resolves one variable to a config key path and typed value;
// a nil path means the variable is not a config setting.
func envSetting(name, value string) ([]string, any, error) {
	if name == envGatewayToken {
		return []string{"gateway", "auth", "token"}, value, nil
	}
	if !strings.HasPrefix(name, envPrefix) || !strings.Contains(name, "__") {
		return nil, nil, nil
	}
	path, t, err := resolveKey(strings.Split(strings.TrimPrefix(name, envPrefix), "__"), true)
	if err != nil {
		return nil, nil, err
	}
	v, err := coerce(t, value)
	return path, v, err
}

// resolveKey resolves key segments against the Config schema to the
// key's path and the type found there. env folds case and ignores
// underscores inside a segment (OPENSOUL_GATEWAY__MAX_BODY_BYTES); a
// dotted --set key may also match by case. A map key may itself hold
// dots (a model ref such as anthropic/claude-sonnet-4.5).
func resolveKey(segs []string, env bool) ([]string, reflect.Type, error) {
	return resolveIn(reflect.TypeOf(Config{}), nil, segs, env)
}

func resolveIn(t reflect.Type, path, segs []string, env bool) ([]string, reflect.Type, error) {
	if len(segs) == 0 {
		if t.Kind() == reflect.Struct || t.Kind() == reflect.Map {
			return nil, nil, fmt.Errorf("%q is a section, not a value; set one of its keys (%s.…)", strings.Join(path, "."), strings.Join(path, "."))
		}
		return path, t, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		f, ok := fieldByKey(t, segs[0], true)
		if !ok {
			if rf, ok := remainField(t); ok { // agents.<id>: a map of the other keys
				key := segs[0]
				if env {
					key = strings.ToLower(key)
				}
				return resolveIn(rf.Type.Elem(), append(path, key), segs[1:], env)
			}
			msg := fmt.Sprintf("no config key %q", joinKey(path, segs[0]))
			if s := suggest(segs[0], schemaKeys(t)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", joinKey(path, s))
			}
			return nil, nil, errors.New(msg)
		}
		return resolveIn(f.Type, append(path, f.Tag.Get("koanf")), segs[1:], env)
	case reflect.Map:
		if env {
			return resolveIn(t.Elem(), append(path, strings.ToLower(segs[0])), segs[1:], env)
		}
		// The shortest dotted key under which the rest resolves.
		var firstErr error
		for i := 1; i <= len(segs); i++ {
			p, et, err := resolveIn(t.Elem(), append(slices.Clip(path), strings.Join(segs[:i], ".")), segs[i:], env)
			if err == nil {
				return p, et, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil, nil, firstErr
	default:
		return nil, nil, fmt.Errorf("%q is a value, it has no key %q", strings.Join(path, "."), segs[0])
	}
}

func joinKey(path []string, k string) string {
	if len(path) == 0 {
		return k
	}
	return strings.Join(path, ".") + "." + k
}

// coerce turns a command-line or environment string into the value the
// schema wants at that key; lists are comma-separated.
func coerce(t reflect.Type, s string) (any, error) {
	switch t.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %q", s)
		}
		return b, nil
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want a whole number, got %q", s)
		}
		return n, nil
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %q", s)
		}
		return f, nil
	case reflect.Slice:
		parts := []string{}
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		return parts, nil
	}
	return nil, fmt.Errorf("cannot be set from a string (%s)", t.Kind())
}

// homeShort writes paths under home as ~/… for people to read.
func homeShort(p, home string) string {
	if home == "" || p == "" {
		return p
	}
	if rel, err := filepath.Rel(home, p); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		return "~" + string(os.PathSeparator) + rel
	}
	return p
}
