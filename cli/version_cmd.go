package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// versionInfo is the JSON of `opensoul version`.
type versionInfo struct {
	Version   string          `json:"version"`
	Commit    string          `json:"commit"`
	Modified  bool            `json:"modified"`
	GoVersion string          `json:"goVersion"`
	Providers []moduleVersion `json:"providers"`
}

type moduleVersion struct {
	Provider string `json:"provider"`
	Module   string `json:"module"`
	Version  string `json:"version"`
	ABI      int    `json:"abiVersion"`
}

func (a *app) versionCmd() *ffcli.Command {
	fs := a.flagSet("version")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "version",
		ShortUsage: "opensoul version [--json]   (or: opensoul --version)",
		ShortHelp:  "Print the version, commit, Go version and each provider module's version.",
		LongHelp: `The version and commit come from the build (go build records the VCS
revision; "(devel)" for a build from a source tree without a tag).

Examples:
  opensoul version
  opensoul --version
  opensoul version --json`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("version takes no arguments")
			}
			return a.printVersion(ctx, *asJSON)
		},
	})
}

func (a *app) printVersion(ctx context.Context, asJSON bool) error {
	v := versionInfo{Version: "(unknown)", Commit: "(unknown)", GoVersion: runtime.Version(), Providers: []moduleVersion{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if reg, _, err := a.registry(ctx); err != nil {
		a.warnf("provider modules: %v", err)
	} else {
		for _, p := range reg.Providers(ctx) {
			v.Providers = append(v.Providers, moduleVersion{Provider: p.Name, Module: p.Source, Version: orDash(p.Version), ABI: p.ABIVersion})
		}
	}
	if asJSON {
		return writeJSON(a.stdout, v)
	}
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(a.stdout, "opensoul %s\ncommit   %s\ngo       %s\n", v.Version, commit, v.GoVersion)
	if len(v.Providers) > 0 {
		fmt.Fprintln(a.stdout, "\nprovider modules:")
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROVIDER\tVERSION\tABI\tMODULE")
		for _, p := range v.Providers {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", p.Provider, p.Version, p.ABI, p.Module)
		}
		tw.Flush()
	}
	return nil
}
