package cli

import (
	"context"
	"fmt"
	"maps"

	"github.com/knadh/koanf/providers/structs"
	"github.com/peterbourgon/ff/v3/ffcli"
	"gopkg.in/yaml.v3"
)

func (a *app) configCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "config",
		ShortUsage: "opensoul config <validate|show> [flags]",
		ShortHelp:  "Check and print the merged configuration.",
		LongHelp: `Config is merged from, lowest to highest: built-in defaults, opensoul.yaml
(<state>/opensoul.yaml, $OPENSOUL_CONFIG_PATH or --config), .env files,
OPENSOUL_SECTION__KEY environment variables (OPENSOUL_GATEWAY__LISTEN sets
gateway.listen), and flags. Strings may reference ${VAR} or ${VAR:-default}.

Examples:
  opensoul config validate
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
	return leaf(&ffcli.Command{
		Name:       "show",
		ShortUsage: "opensoul config show [--json]",
		ShortHelp:  "Print the merged config with secrets redacted.",
		LongHelp:   "Example:\n  opensoul config show --json | jq .gateway",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := a.load(); err != nil {
				return err
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
	return m
}
