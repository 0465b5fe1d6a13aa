package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/term"

	"github.com/opensoul/opensoul/gateway"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
)

func (a *app) authCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:       "auth",
		ShortUsage: "opensoul models auth <command> [flags]",
		ShortHelp:  "Add, order, list and remove credential profiles.",
		LongHelp: `Secrets are kept only in <state>/agents/<agent>/agent/auth-profiles.json
(mode 0600); opensoul.yaml records which profiles exist.

Examples:
  opensoul models auth login --provider openai       # ChatGPT plan (Codex sign-in)
  claude setup-token && opensoul models auth setup-token --provider anthropic
  pbpaste | opensoul models auth paste-token --provider openrouter --type api_key
  opensoul models auth order set --provider anthropic anthropic:work anthropic:default
  opensoul models auth clear-cooldown --provider anthropic`,
		FlagSet: a.flagSet("auth"),
		Subcommands: []*ffcli.Command{
			a.loginCmd(), a.importCmd(), a.pasteTokenCmd(), a.setupTokenCmd(), a.orderCmd(),
			a.authListCmd(), a.authRemoveCmd(), a.clearCooldownCmd(),
		},
	})
}

// isTerminal reports whether r is an interactive terminal.
func isTerminal(r io.Reader) (int, bool) {
	f, ok := r.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// readSecret reads one secret: from a pipe as-is, or from a terminal
// with a prompt and without echo.
func (a *app) readSecret(prompt string) (string, error) {
	if fd, ok := isTerminal(a.stdin); ok {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read secret from stdin: %w", err)
	}
	return string(b), nil
}

// parseDays reads a positive Go duration plus a day suffix: 90m, 12h, 7d, 365d.
func parseDays(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days float64
		days, err = strconv.ParseFloat(n, 64)
		d = time.Duration(days * 24 * float64(time.Hour))
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive duration such as 12h or 7d, got %q", s)
	}
	return d, nil
}

// parseExpiresIn reads --expires-in (parseDays).
func parseExpiresIn(s string) (time.Duration, error) {
	d, err := parseDays(s)
	if err != nil {
		return 0, fmt.Errorf("--expires-in: %w", err)
	}
	return d, nil
}

// saveOptions describes a credential to store.
type saveOptions struct {
	agent, provider, id, typ string
	secret                   string
	expires                  int64
	interactive, force       bool
	typeGiven                bool
	noOrder                  bool // leave an explicit order as it is
}

// saveCredential checks the secret with the provider module (when one is
// wired), stores it and records its metadata in opensoul.yaml.
func (a *app) saveCredential(ctx context.Context, o saveOptions) error {
	now := time.Now()
	if a.checker != nil {
		probe := store.Credential{Type: o.typ, Provider: o.provider, Key: o.secret, Token: o.secret}
		if !o.typeGiven {
			probe.Type = store.TypeToken
		}
		v := a.checker(ctx, probe, now)
		if typ, ok := providers.CredentialType(v.Kind); ok && !o.typeGiven {
			o.typ = typ
		}
		if v.Status == gateway.StatusInvalid {
			msg := fmt.Sprintf("the %s module rejects this secret: %s", o.provider, v.Reason)
			if !o.force {
				if !o.interactive {
					return fmt.Errorf("%s; nothing saved (use --force to store it anyway)", msg)
				}
				ok, err := a.confirm(msg + ". Save it anyway? [y/N] ")
				if err != nil || !ok {
					return errors.New("nothing saved")
				}
			} else {
				a.warnf("%s; saving anyway (--force)", msg)
			}
		}
	}
	cred := store.Credential{Type: o.typ, Provider: o.provider, Expires: o.expires}
	if o.typ == store.TypeAPIKey {
		cred.Key = o.secret
	} else {
		cred.Token = o.secret
	}
	changed := false
	if err := a.st.UpdateProfiles(o.agent, func(p *store.Profiles) error {
		changed = p.Profiles[o.id].Secret() != cred.Secret()
		p.Profiles[o.id] = cred
		return nil
	}); err != nil {
		return err
	}
	if changed {
		// Cooldowns and disables were about the old secret (an auth
		// disable lasts "until the credential is changed"): start afresh.
		a.resetUsage(o.agent, o.id)
	}
	if err := upsertProfileMeta(a.cfgFile, o.id, o.provider, o.typ); err != nil {
		a.warnf("saved the credential, but could not record it in %s: %v", a.cfgFile, err)
	}
	fmt.Fprintf(a.stdout, "Saved %s (%s %s) to %s\n", o.id, o.typ, scrub.Mask(o.secret), a.st.ProfilesPath(o.agent))
	fmt.Fprintf(a.stdout, "Recorded auth.profiles.%s in %s\n", o.id, a.cfgFile)
	if !o.noOrder {
		if err := a.putFirstInOrder(o.agent, o.provider, o.id); err != nil {
			a.warnf("saved the credential, but could not put it first in the order in force: %v", err)
		}
	}
	fmt.Fprintln(a.stdout, "Check it with: opensoul models status")
	return nil
}

func (a *app) confirm(prompt string) (bool, error) {
	fmt.Fprint(a.stderr, prompt)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes", nil
}

func validProvider(p string) error {
	if p == "" {
		return usageErr("--provider is required (for example --provider anthropic)")
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return usageErr("--provider %q: use lower-case letters, digits, '-' or '_'", p)
		}
	}
	return nil
}

func (a *app) pasteTokenCmd() *ffcli.Command {
	fs := a.flagSet("paste-token")
	provider := fs.String("provider", "", "provider the secret is for (anthropic, openai, openrouter, …)")
	id := fs.String("profile-id", "", "profile id (default <provider>:manual)")
	typ := fs.String("type", "", "token or api_key (default: what the provider module recognises, else token)")
	expiresIn := fs.String("expires-in", "", "when the token expires, e.g. 8h or 365d")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	force := fs.Bool("force", false, "store a secret the provider module rejects")
	noOrder := fs.Bool("no-order", false, "leave an explicit order (agent store or config auth.order) as it is")
	return leaf(&ffcli.Command{
		Name:       "paste-token",
		ShortUsage: "opensoul models auth paste-token --provider P [--profile-id ID] [--type token|api_key] [--expires-in DUR] [--agent ID]",
		ShortHelp:  "Store a token or API key pasted on stdin (prompted without echo on a terminal).",
		LongHelp: `Reads the secret from stdin when it is piped, or prompts for it without
echo on a terminal. Pasted text is cleaned: surrounding whitespace and line
breaks, a leading "export NAME=" and wrapping quotes are removed.

With an explicit order in force for the provider (the agent store's, or
config auth.order), the profile is put at its front so that it serves
next — the store order is edited in the store, auth.order in the YAML
with its comments kept — and the command says so. --no-order opts out.

Examples:
  opensoul models auth paste-token --provider anthropic
  echo "$OPENROUTER_KEY" | opensoul models auth paste-token --provider openrouter --type api_key
  opensoul models auth paste-token --provider anthropic --profile-id anthropic:work --expires-in 365d`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("paste-token reads the secret from stdin, not from arguments (arguments end up in shell history)")
			}
			if err := validProvider(*provider); err != nil {
				return err
			}
			if *typ != "" && *typ != store.TypeToken && *typ != store.TypeAPIKey {
				return usageErr("--type: want token or api_key, got %q", *typ)
			}
			if err := a.load(); err != nil {
				return err
			}
			ag, err := a.agentID(*agent)
			if err != nil {
				return err
			}
			pid := *id
			if pid == "" {
				pid = *provider + ":manual"
			}
			if !strings.HasPrefix(pid, *provider+":") || len(pid) == len(*provider)+1 {
				return usageErr("--profile-id %q must look like %s:<name>", pid, *provider)
			}
			var expires int64
			if *expiresIn != "" {
				d, err := parseExpiresIn(*expiresIn)
				if err != nil {
					return usageErr("%v", err)
				}
				expires = time.Now().Add(d).UnixMilli()
			}
			raw, err := a.readSecret(fmt.Sprintf("Paste the %s secret (input hidden): ", *provider))
			if err != nil {
				return err
			}
			secret, err := normalizeSecret(raw)
			if err != nil {
				return err
			}
			_, interactive := isTerminal(a.stdin)
			t := *typ
			if t == "" {
				t = store.TypeToken
			}
			return a.saveCredential(ctx, saveOptions{
				agent: ag, provider: *provider, id: pid, typ: t, secret: secret, expires: expires,
				interactive: interactive, force: *force, typeGiven: *typ != "", noOrder: *noOrder,
			})
		},
	})
}

// checkSetupTokenShape checks s against the shape of p's setup-tokens
// (prefix and length from the provider table; a shorter paste was cut
// off, often at a line wrap). p must have setup-tokens.
func checkSetupTokenShape(p providers.Provider, s string) error {
	st := p.SetupToken
	if !strings.HasPrefix(s, st.Prefix) {
		if st.APIKeyPrefix != "" && strings.HasPrefix(s, st.APIKeyPrefix) {
			return fmt.Errorf("this is an %s API key, not a setup-token; store it with: opensoul models auth paste-token --provider %s --type api_key", p.Title, p.Name)
		}
		return fmt.Errorf("a setup-token starts with %q; this does not (was the right text copied?)", st.Prefix)
	}
	if len(s) < st.MinLen {
		return fmt.Errorf("this setup-token is %d characters, too short to be whole (want at least %d); copy it again in one piece", len(s), st.MinLen)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("a setup-token has only letters, digits, '-' and '_'; found %q", r)
		}
	}
	return nil
}

func (a *app) setupTokenCmd() *ffcli.Command {
	fs := a.flagSet("setup-token")
	withTokens := setupTokenProviders()
	provider := fs.String("provider", withTokens[0], "provider (those with setup-tokens: "+strings.Join(withTokens, ", ")+")")
	id := fs.String("profile-id", "", "profile id (default <provider>:default)")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	yes := fs.Bool("yes", false, "do not ask for confirmation before saving")
	noOrder := fs.Bool("no-order", false, "leave an explicit order (agent store or config auth.order) as it is")
	return leaf(&ffcli.Command{
		Name:       "setup-token",
		ShortUsage: "opensoul models auth setup-token --provider anthropic [--yes]",
		ShortHelp:  "Interactively store a Claude subscription setup-token.",
		LongHelp: `Run "claude setup-token" on this machine (it needs Claude Code and a Claude
Pro or Max subscription), then run this command and paste the token it
printed. The token is checked (it starts with sk-ant-oat01- and is long)
before it is saved. Needs a terminal; in scripts use paste-token.

Example:
  claude setup-token
  opensoul models auth setup-token --provider anthropic`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pr := providers.For(*provider)
			if pr.SetupToken == nil {
				return usageErr("setup-token is for --provider %s; for %s use: opensoul models auth paste-token --provider %s", strings.Join(withTokens, " or "), *provider, *provider)
			}
			if _, ok := isTerminal(a.stdin); !ok {
				return usageErr("setup-token is interactive and needs a terminal; without one use:\n  opensoul models auth paste-token --provider %s < token.txt", pr.Name)
			}
			if err := a.load(); err != nil {
				return err
			}
			ag, err := a.agentID(*agent)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Run `%s` in another terminal (it opens a browser to sign in\nwith your subscription) and copy the token it prints.\n", pr.SetupToken.Command)
			raw, err := a.readSecret("Paste the setup-token (input hidden): ")
			if err != nil {
				return err
			}
			secret, err := normalizeSecret(raw)
			if err != nil {
				return err
			}
			if err := checkSetupTokenShape(pr, secret); err != nil {
				return err
			}
			pid := *id
			if pid == "" {
				pid = pr.Name + ":default"
			}
			if !*yes {
				ok, err := a.confirm(fmt.Sprintf("Save %s as %s? [y/N] ", scrub.Mask(secret), pid))
				if err != nil || !ok {
					return errors.New("nothing saved")
				}
			}
			return a.saveCredential(ctx, saveOptions{
				agent: ag, provider: pr.Name, id: pid, typ: store.TypeToken, secret: secret,
				interactive: true, typeGiven: true, noOrder: *noOrder,
			})
		},
	})
}

// setupTokenProviders names the built-in providers that have setup-tokens.
func setupTokenProviders() []string {
	var out []string
	for _, p := range providers.Builtin() {
		if p.SetupToken != nil {
			out = append(out, p.Name)
		}
	}
	return out
}
