package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"

	kmaps "github.com/knadh/koanf/maps"

	"github.com/knadh/koanf/providers/structs"
	"github.com/peterbourgon/ff/v3/ffcli"
	"gopkg.in/yaml.v3"
)

func (a *app) configCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "config",
		ShortUsage: "opensoul config <validate|show> [flags]",
		ShortHelp:  "Check and print the merged configuration.",
		LongHelp: `Config is merged from, lowest to highest:
  default  built-in defaults
  yaml     opensoul.yaml (<state>/opensoul.yaml, $OPENSOUL_CONFIG_PATH or --config)
  dotenv   OPENSOUL_SECTION__KEY lines in <state>/.env, then ./.env
  env      OPENSOUL_SECTION__KEY environment variables
           (OPENSOUL_GATEWAY__LISTEN sets gateway.listen; OPENSOUL_GATEWAY_TOKEN
           sets gateway.auth.token)
  flag     --set key=value on any command (repeatable), and command flags
           bound to a key (gateway --listen sets gateway.listen)
Strings may reference ${VAR} or ${VAR:-default}. Lists are comma-separated
in variables and --set.

Examples:
  opensoul config validate
  opensoul config show --sources          # every key, its value and its layer
  opensoul config show --set log.level=debug --sources | grep log.level
  opensoul config show --json`,
		FlagSet:     a.flagSet("config"),
		Subcommands: []*ffcli.Command{a.configValidateCmd(), a.configShowCmd()},
	})
}

func (a *app) configValidateCmd() *ffcli.Command {
	fs := a.flagSet("config validate")
	return leaf(&ffcli.Command{
		Name:       "validate",
		ShortUsage: "opensoul config validate",
		ShortHelp:  "Check the config file and environment; exit 1 with file:line on a problem.",
		LongHelp:   "Example:\n  opensoul config validate && echo ok",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := a.load(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: ok\n", a.cfgFile)
			return nil
		},
	})
}

func (a *app) configShowCmd() *ffcli.Command {
	fs := a.flagSet("config show")
	asJSON := fs.Bool("json", false, "print JSON")
	sources := fs.Bool("sources", false, "list every key with its value and the layer (and file, variable or flag) it came from")
	return leaf(&ffcli.Command{
		Name:       "show",
		ShortUsage: "opensoul config show [--sources] [--json]",
		ShortHelp:  "Print the merged config with secrets redacted; --sources says where each key came from.",
		LongHelp: `Secrets (gateway tokens, API keys, env.vars) are printed as <redacted>,
with --sources too. A source reads: default | yaml FILE | dotenv FILE VAR |
env VAR | flag --set or flag --listen.

Examples:
  opensoul config show --json | jq .gateway
  opensoul config show --sources
  opensoul config show --sources --json | jq '.[] | select(.layer != "default")'`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := a.load(); err != nil {
				return err
			}
			if *sources {
				return a.printSources(*asJSON)
			}
			red := a.cfg.redacted()
			if *asJSON {
				return writeJSON(a.stdout, red.asMap())
			}
			out, err := yaml.Marshal(red.asMap())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "# merged config (%s); secrets redacted\n%s", a.cfgFile, out)
			return nil
		},
	})
}

// sourceRow is one key of `config show --sources`.
type sourceRow struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
	Source
}

// sourceRows lists every key of the config in force, its redacted value
// and where it came from. A key no layer set (a field of a map entry the
// YAML left out, say) holds its zero value: the default.
func (l *loadedConfig) sourceRows() []sourceRow {
	flat, _ := kmaps.Flatten(plainMap(l.Cfg.redacted().asMap()), nil, ".")
	rows := make([]sourceRow, 0, len(flat))
	for _, key := range slices.Sorted(maps.Keys(flat)) {
		src, ok := l.Sources[key]
		if !ok {
			src = Source{Layer: layerDefault}
		}
		rows = append(rows, sourceRow{Key: key, Value: flat[key], Source: src})
	}
	return rows
}

func (a *app) printSources(asJSON bool) error {
	rows := a.cur.sourceRows()
	if asJSON {
		return writeJSON(a.stdout, rows)
	}
	fmt.Fprintf(a.stdout, "# merged config (%s); secrets redacted\n", a.cfgFile)
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, r := range rows {
		src := r.Source
		src.File = homeShort(src.File, a.environ["HOME"])
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Key, showValue(r.Value), src)
	}
	return tw.Flush()
}

// plainMap turns the typed maps inside m (map[string][]string, say) into
// map[string]any, so that every key can be flattened.
func plainMap(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	out := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.Decode(&out)
	return out
}

// showValue prints a string as it is and anything else as JSON.
func showValue(v any) string {
	if s, ok := v.(string); ok {
		if s == "" {
			return `""`
		}
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

const redactedValue = "<redacted>"

// redacted returns a copy of c with every secret-bearing value replaced.
func (c Config) redacted() Config {
	r := c
	if r.Gateway.Auth.Token != "" {
		r.Gateway.Auth.Token = redactedValue
	}
	r.Gateway.Auth.Agents = maps.Clone(c.Gateway.Auth.Agents)
	for k := range r.Gateway.Auth.Agents {
		r.Gateway.Auth.Agents[k] = redactedValue
	}
	r.Providers = maps.Clone(c.Providers)
	for k, p := range r.Providers {
		if p.APIKey != "" {
			p.APIKey = redactedValue
			r.Providers[k] = p
		}
	}
	r.Env.Vars = maps.Clone(c.Env.Vars)
	for k := range r.Env.Vars {
		r.Env.Vars[k] = redactedValue
	}
	return r
}

// asMap renders the config with its YAML key names.
func (c Config) asMap() map[string]any {
	m, _ := structs.Provider(c, "koanf").Read()
	liftRemain(m, reflect.TypeOf(c))
	return m
}

// liftRemain puts the entries of a koanf:",remain" field (agents.<id>)
// where the YAML has them, beside the struct's other keys, rather than
// under the Go field name the structs provider gives them.
func liftRemain(m map[string]any, t reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		switch {
		case strings.HasPrefix(tag, ",remain"):
			if v := reflect.ValueOf(m[f.Name]); v.Kind() == reflect.Map {
				for _, k := range v.MapKeys() {
					m[fmt.Sprint(k.Interface())] = v.MapIndex(k).Interface()
				}
			}
			delete(m, f.Name)
		case f.Type.Kind() == reflect.Struct:
			if sub, ok := m[tag].(map[string]any); ok {
				liftRemain(sub, f.Type)
			}
		}
	}
}
