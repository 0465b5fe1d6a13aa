package cli

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/connect"
	"github.com/opensoul/opensoul/cli/dotenv"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
)

// envAgentToken is the variable connect's recipes read an agent's own
// gateway token from (gateway.auth.agents.<id>); like
// OPENSOUL_GATEWAY_TOKEN it is no provider's key variable.
const envAgentToken = "OPENSOUL_AGENT_TOKEN"

func (a *app) connectCmd() *ffcli.Command {
	fs := a.flagSet("connect")
	asJSON := fs.Bool("json", false, "print the recipe as JSON")
	agent := fs.String("agent", "", "the agent the client acts as (default: agents.default); sent as x-opensoul-agent")
	write := fs.Bool("write", false, "merge the block into the client's own config file (Codex, OpenClaw), after a backup of the old file")
	var list strings.Builder
	for _, c := range connect.Clients() {
		fmt.Fprintf(&list, "  %-14s %s\n", c, connect.Title(c))
	}
	return leaf(&ffcli.Command{
		Name:       "connect",
		ShortUsage: "opensoul connect <client> [--agent ID] [--write] [--json]",
		ShortHelp:  "Print the exact setup that points a client (Claude Code, Codex, an SDK…) at the gateway.",
		LongHelp: `Prints, for one client, the environment lines, config-file block or code
that make it talk to this gateway: its address (gateway.listen, or the
running gateway's), the agent, and the providers the config uses, each with
the base URL that client expects (some append /v1 themselves, some don't).

Clients:
` + list.String() + `
The gateway token reaches clients through OPENSOUL_GATEWAY_TOKEN (or
` + envAgentToken + ` for an agent with its own token), never through a provider's
key variable such as ANTHROPIC_API_KEY: a gateway or CLI started from that
shell would take it for a credential. connect never prints a token.

--write merges the block into the client's own config file where that is
safe: Codex (~/.codex/config.toml, or $CODEX_HOME) and OpenClaw
(~/.openclaw/openclaw.json, or $OPENCLAW_CONFIG_PATH). The rest of the file
is kept, the old file is copied to <file>.bak-<time> first, a second run
changes nothing, and a file that does not parse is left alone. The file
names the token's variable, never the token.

Examples:
  opensoul connect claude-code
  opensoul connect codex --write
  opensoul connect ai-sdk --agent research
  opensoul connect curl --json`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				fmt.Fprintf(a.stdout, "opensoul connect <client>: one of\n%s\nRun `opensoul connect --help` for more.\n", list.String())
				if len(args) == 0 {
					return nil
				}
				return usageErr("connect takes one client, got %q", args)
			}
			return a.connect(args[0], *agent, *write, *asJSON)
		},
	})
}

// connectOutput is the JSON of `opensoul connect --json`.
type connectOutput struct {
	Gateway  string            `json:"gateway"`
	Agent    string            `json:"agent"`
	TokenVar string            `json:"tokenVar"`
	Token    string            `json:"tokenFrom"` // how TokenVar gets its value; never the token
	Recipe   connect.Recipe    `json:"recipe"`
	Written  []connect.Written `json:"written"`
}

func (a *app) connect(client, agentFlag string, write, asJSON bool) error {
	if connect.Title(client) == "" {
		msg := connect.ErrUnknownClient{Name: client}.Error()
		if s := suggest(client, connect.Clients()); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return usageErr("%s", msg)
	}
	if err := a.load(); err != nil {
		return err
	}
	setup, err := a.connectSetup(agentFlag)
	if err != nil {
		return err
	}
	rec, err := connect.Build(client, setup)
	if err != nil {
		return err
	}
	out := connectOutput{Gateway: setup.Gateway, Agent: setup.Agent, TokenVar: setup.TokenVar, Token: setup.TokenFrom,
		Recipe: rec, Written: []connect.Written{}}
	if write {
		if out.Written, err = a.connectWrite(rec); err != nil {
			return err
		}
	}
	if asJSON {
		return writeJSON(a.stdout, out)
	}
	rec.Text(a.stdout, setup)
	for _, w := range out.Written {
		switch {
		case !w.Changed:
			fmt.Fprintf(a.stdout, "\n%s already holds this setup; left unchanged.\n", w.Path)
		case w.Backup != "":
			fmt.Fprintf(a.stdout, "\nWrote %s (the old file is in %s).\n", w.Path, w.Backup)
		default:
			fmt.Fprintf(a.stdout, "\nWrote %s.\n", w.Path)
		}
	}
	return nil
}

// connectWrite writes each writable file of rec.
func (a *app) connectWrite(rec connect.Recipe) ([]connect.Written, error) {
	home := a.environ["HOME"]
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return nil, fmt.Errorf("connect --write: no home directory: %w", err)
		}
	}
	var out []connect.Written
	for _, p := range rec.Parts {
		if p.File == nil || !p.File.Writable {
			continue
		}
		path := p.File.Locate(home, func(k string) string { return a.environ[k] })
		w, err := p.File.Write(path, a.now())
		if err != nil {
			return out, fmt.Errorf("connect --write: %w", err)
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, usageErr("connect --write: %s has no config file OpenSoul writes; its setup is the lines shown without --write", rec.Title)
	}
	return out, nil
}

// connectSetup gathers what recipes are rendered from: the gateway's
// address, the agent, where the token comes from, and the providers in
// use with their base paths from the provider table.
func (a *app) connectSetup(agentFlag string) (connect.Setup, error) {
	s := connect.Setup{Gateway: "http://" + clientAddr(a.listenAddr()), TokenVar: envGatewayToken}
	id, err := a.agentID(agentFlag)
	if err != nil {
		return s, usageErr("--agent: %v", err)
	}
	defaultAgent := a.cfg.Agents.Default
	if defaultAgent == "" {
		defaultAgent = store.DefaultAgent
	}
	if id != defaultAgent {
		s.Agent = id
		if !a.agentKnown(id) {
			a.warnf("agent %q has no token and no profiles yet; the gateway refuses it until it has one (opensoul models auth paste-token --agent %s …)", id, id)
		}
	}
	s.TokenFrom = a.tokenSource(id, &s.TokenVar)
	for _, name := range a.connectProviders(id) {
		p := providers.For(name)
		root := s.Gateway + "/" + name
		s.Routes = append(s.Routes, connect.Route{Provider: name, Root: root, API: root + p.APIPrefix,
			APIs: p.APIs, Models: a.modelsOf(name)})
	}
	return s, nil
}

// connectProviders lists the providers recipes may use, most wanted
// first: those the model config names (primary, fallbacks, allowed
// models, in that order), then those with a credential for the agent
// (stored, environment or config) or added by the user, in the provider
// table's order. With none of these (a fresh install) every provider the
// config routes is listed, in table order, so each recipe still prints.
func (a *app) connectProviders(agent string) []string {
	var all []string // every provider the gateway routes
	for name := range a.cfg.Providers {
		all = append(all, name)
	}
	order := providers.Names()
	slices.SortFunc(all, func(x, y string) int {
		if d := rank(order, x) - rank(order, y); d != 0 {
			return d
		}
		return strings.Compare(x, y)
	})
	var out []string
	refs := append([]string{a.cfg.Agents.Defaults.Model.Primary}, a.cfg.Agents.Defaults.Model.Fallbacks...)
	for _, ref := range append(refs, slices.Sorted(maps.Keys(a.cfg.Agents.Defaults.Models))...) {
		if p, _, ok := strings.Cut(ref, "/"); ok && slices.Contains(all, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	stored := map[string]bool{}
	if eff, err := a.st.LoadEffective(agent); err == nil {
		for _, c := range eff.Profiles {
			stored[c.Provider] = true
		}
	}
	for _, name := range all {
		_, _, inEnv := a.env.Credential(name)
		_, builtin := providers.Lookup(name)
		if (stored[name] || inEnv || a.cfg.Providers[name].APIKey != "" || !builtin) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

// agentKnown says whether the gateway accepts requests for agent id: it
// has a token of its own or a directory in the state (the gateway's
// knownAgent; the default agent is always known).
func (a *app) agentKnown(id string) bool {
	if _, ok := a.cfg.Gateway.Auth.Agents[id]; ok {
		return true
	}
	fi, err := os.Stat(a.st.AgentDir(id))
	return err == nil && fi.IsDir()
}

// rank orders table providers first, in table order.
func rank(order []string, name string) int {
	if i := slices.Index(order, name); i >= 0 {
		return i
	}
	return len(order)
}

// listenAddr is the running gateway's bound address, else gateway.listen.
func (a *app) listenAddr() string {
	if run, ok, _ := readRunInfo(a.st.Dir); ok && processAlive(run.PID) && run.Addr != "" {
		return run.Addr
	}
	return a.cfg.Gateway.Listen
}

// clientAddr is the address a local client dials for listen: a wildcard
// host becomes loopback.
func clientAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// tokenSource says how the client's shell gets the token agent id uses,
// never printing it; tokenVar becomes envAgentToken for an agent with a
// token of its own.
func (a *app) tokenSource(id string, tokenVar *string) string {
	where := "the config"
	if a.cfgFile != "" {
		where = a.cfgFile
	}
	if a.cfg.Gateway.Auth.Agents[id] != "" {
		*tokenVar = envAgentToken
		return fmt.Sprintf("export %s='…'    # agent %s's own token: gateway.auth.agents.%s in %s", envAgentToken, id, id, where)
	}
	envFile := filepath.Join(a.st.Dir, ".env")
	if vars, err := dotenv.ReadFile(envFile); err == nil && vars[envGatewayToken] != "" {
		return fmt.Sprintf("set -a; . %s; set +a    # sets %s", envFile, envGatewayToken)
	}
	if a.environ[envGatewayToken] != "" {
		return fmt.Sprintf("%s is already set in this shell", envGatewayToken)
	}
	if a.cfg.Gateway.Auth.Token != "" {
		return fmt.Sprintf("export %s='…'    # gateway.auth.token in %s", envGatewayToken, where)
	}
	return fmt.Sprintf("set -a; . %s; set +a    # `opensoul gateway` (or onboard) saves a generated token there", envFile)
}

// modelsOf lists the models of provider named in the config
// (primary, fallbacks, allowed models), without the "provider/" prefix.
func (a *app) modelsOf(provider string) []string {
	refs := append([]string{a.cfg.Agents.Defaults.Model.Primary}, a.cfg.Agents.Defaults.Model.Fallbacks...)
	refs = append(refs, slices.Sorted(maps.Keys(a.cfg.Agents.Defaults.Models))...)
	var out []string
	for _, ref := range refs {
		if p, m, ok := strings.Cut(ref, "/"); ok && p == provider && m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// connectClients lists the clients `opensoul connect` knows, for the
// gateway's banner.
func connectClients() string { return strings.Join(connect.Clients(), "|") }
