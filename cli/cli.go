// Package cli is OpenSoul's command line: the ff/v3 command tree, koanf
// config loading and output formatting. It is the only package that knows
// about flags, environment variables and config files; everything below it
// receives plain typed values.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/login"
	"github.com/opensoul/opensoul/cli/service"
	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// Run executes the CLI with args (without the program name) and returns the
// process exit code. It reads the process environment.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdin, stdout, stderr, os.Environ())
}

// exitError carries an exit code other than 1 (for example `status --check`).
type exitError struct {
	code int
	err  error // nil: nothing more to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// app holds what every command shares: standard streams, the environment
// the process was given, global flags, and config loaded on first use.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        map[string]string // the process environment

	// global flags
	configPath string
	stateDir   string
	// flagSets are the config keys given on the command line (--set and
	// key-bound flags such as gateway --listen), in order: the flag layer.
	flagSets []flagSetting

	// put in force by use(); cfg, cfgFile, env and tokenWarnings are
	// cur's, kept as fields for the commands that read them.
	cur     *loadedConfig
	cfg     Config
	cfgFile string
	env     gateway.Env
	st      *store.Store
	// tokenWarnings name the environment and config credentials dropped
	// because they hold a gateway or agent token (dropClientTokens).
	tokenWarnings []string

	// checker runs a provider module's check on a credential; nil when
	// no module host is wired. Returns the zero Verdict when it has none.
	checker func(ctx context.Context, c store.Credential, now time.Time) gateway.Verdict

	mods    modules  // provider-module host, started on first use
	cleanup []func() // run when the command is done

	// The service manager `gateway install` drives: runtime.GOOS and the
	// real systemctl/launchctl unless a test sets them.
	goos      string
	svcRunner *service.Runner
	binary    string // the binary a unit runs: this executable unless a test sets it

	cwdWarned bool // the ./.env warning was printed (a running gateway reloads)

	clock func() time.Time // time.Now unless a test sets it

	// oauthLogin runs a provider's OAuth login and stores the result as a
	// profile (onboard's OAuth choice): the signIn of `models auth login`
	// unless a test sets it; nil makes onboard say it is not available.
	oauthLogin func(ctx context.Context, provider string) error
}

func (a *app) now() time.Time {
	if a.clock != nil {
		return a.clock()
	}
	return time.Now()
}

// warnf is the CLI's one way to warn: "opensoul: warning: …" on stderr.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.stderr, "opensoul: warning: "+format+"\n", args...)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	return newApp(stdin, stdout, stderr, environ).run(ctx, args)
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, environ []string) *app {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, environ: map[string]string{}}
	a.oauthLogin = func(ctx context.Context, provider string) error {
		return a.signIn(ctx, "", login.Request{Provider: provider, Timeout: 10 * time.Minute})
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, dup := a.environ[k]; !dup {
				a.environ[k] = v
			}
		}
	}
	return a
}

// run executes one command line and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	stderr := a.stderr
	a.checker = a.moduleChecker()
	defer func() {
		for _, f := range a.cleanup {
			f()
		}
	}()
	root := a.rootCmd()
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "opensoul: %v\n", err)
		return 2
	}
	err := root.Run(ctx)
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "opensoul: %v\n", ee.err)
		}
		return ee.code
	default:
		fmt.Fprintf(stderr, "opensoul: %v\n", err)
		return 1
	}
}

// rootCmd builds the command tree. Each subcommand lives in its own file
// as a constructor on *app.
func (a *app) rootCmd() *ffcli.Command {
	fs := a.flagSet("opensoul")
	showVersion := fs.Bool("version", false, "print the version and exit (see: opensoul version)")
	subs := []*ffcli.Command{
		a.modelsCmd(),
		a.configCmd(),
		a.connectCmd(),
		a.doctorCmd(),
		a.onboardCmd(),
		a.versionCmd(),
	}
	subs = append(subs, a.extraCmds()...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
	root := a.group(&ffcli.Command{
		Name:       "opensoul",
		ShortUsage: "opensoul [--config FILE] [--state-dir DIR] [--set key=value]... <command> [flags]",
		ShortHelp:  "OpenSoul: one local gateway for all your model credentials.",
		LongHelp: `OpenSoul keeps your model credentials (API keys, setup-tokens, OAuth
logins) in one place and serves them through one local gateway.

Examples:
  opensoul onboard                                  # first-time setup
  opensoul models auth paste-token --provider anthropic
  opensoul models status --check                    # exit 1 needs you, 2 soon (see --help)
  opensoul gateway                                  # run the gateway on 127.0.0.1:18789`,
		FlagSet:     fs,
		Subcommands: subs,
	})
	group := root.Exec
	root.Exec = func(ctx context.Context, args []string) error {
		if *showVersion {
			return a.printVersion(ctx, false)
		}
		return group(ctx, args)
	}
	return root
}

// flagSet returns a flag set that carries the global flags, so they may
// be given before or after the subcommand.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stdout)
	fs.StringVar(&a.configPath, "config", a.configPath, "config file (default $OPENSOUL_CONFIG_PATH or <state>/opensoul.yaml)")
	fs.StringVar(&a.stateDir, "state-dir", a.stateDir, "state directory (default $OPENSOUL_STATE_DIR or ~/.opensoul)")
	fs.Var(setFlag{a, "--set", ""}, "set", "`key=value`: set a config key for this command, over every other layer, e.g. --set gateway.listen=127.0.0.1:9000 (repeatable; lists comma-separated; see: opensoul config show --sources)")
	return fs
}

// keyFlag defines a command flag that sets one config key, through the
// same flag layer as --set (so `config show --sources` names it).
func (a *app) keyFlag(fs *flag.FlagSet, name, key, usage string) {
	fs.Var(setFlag{a, "--" + name, key}, name, usage)
}

// setFlag records a config flag into app.flagSets when the flag set
// parses it. key "" is --set, whose value is key=value.
type setFlag struct {
	a    *app
	flag string
	key  string
}

func (f setFlag) String() string { return "" }

func (f setFlag) Set(v string) error {
	s := flagSetting{Flag: f.flag, Key: f.key, Value: v}
	if f.key == "" {
		k, val, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("want key=value (a config key such as gateway.listen), got %q", v)
		}
		s.Key, s.Value = strings.TrimSpace(k), val
	}
	f.a.flagSets = append(f.a.flagSets, s)
	return nil
}

// group makes cmd a command that only holds subcommands: run bare it
// prints its help; run with an unknown word it suggests the nearest one.
func (a *app) group(cmd *ffcli.Command) *ffcli.Command {
	cmd.Exec = func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			fmt.Fprintln(a.stdout, ffcli.DefaultUsageFunc(cmd))
			return nil
		}
		var names []string
		for _, s := range cmd.Subcommands {
			names = append(names, s.Name)
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.Name)
		if s := suggest(args[0], names); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return &exitError{code: 2, err: fmt.Errorf("%s (run '%s --help' to list commands)", msg, commandPath(cmd))}
	}
	return cmd
}

func commandPath(cmd *ffcli.Command) string {
	if strings.HasPrefix(cmd.ShortUsage, "opensoul") {
		if f := strings.Fields(cmd.ShortUsage); len(f) > 0 {
			var words []string
			for _, w := range f {
				if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "<") || strings.HasPrefix(w, "-") {
					break
				}
				words = append(words, w)
			}
			return strings.Join(words, " ")
		}
	}
	return cmd.Name
}

// leaf wraps a command's Exec so that flags may follow positional
// arguments (`order set --provider anthropic id1 id2 --agent x`).
func leaf(cmd *ffcli.Command) *ffcli.Command {
	exec := cmd.Exec
	cmd.Exec = func(ctx context.Context, args []string) error {
		pos, err := interspersed(cmd.FlagSet, args)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		return exec(ctx, pos)
	}
	return cmd
}

func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		switch {
		case args[0] == "--":
			return append(pos, args[1:]...), nil
		case len(args[0]) > 1 && args[0][0] == '-':
			if err := fs.Parse(args); err != nil {
				return nil, err
			}
			args = fs.Args()
		default:
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	return pos, nil
}

// suggest returns the candidate closest to word, if it is close enough.
func suggest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(word), strings.ToLower(c))
		if strings.HasPrefix(c, word) && len(word) >= 2 {
			d = 0
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= 2 || (bestD <= len(word)/2 && bestD < 4) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
