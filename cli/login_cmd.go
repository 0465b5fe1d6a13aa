package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway/oauth"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/wasm"
)

func (a *app) loginCmd() *ffcli.Command {
	fs := a.flagSet("login")
	provider := fs.String("provider", "", "provider to sign in to (openai: the Codex / ChatGPT sign-in)")
	id := fs.String("profile-id", "", "profile id (default <provider>:<email>, else <provider>:default)")
	device := fs.Bool("device", false, "use the device code flow: sign in on any other device")
	noBrowser := fs.Bool("no-browser", false, "print the URL and paste back the address the browser ends on (no display, SSH)")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the sign-in")
	return leaf(&ffcli.Command{
		Name:       "login",
		ShortUsage: "opensoul models auth login --provider P [--profile-id ID] [--device] [--no-browser] [--agent ID]",
		ShortHelp:  "Sign in with the provider's OAuth (browser, pasted redirect or device code) and store the login.",
		LongHelp: `Signs in with OAuth 2.0: the authorization code flow with PKCE, answered
on a loopback address (the port the provider's client is registered with),
or with --no-browser by pasting the address the browser ends on (for SSH
and hosts without a display; chosen by itself when there is no display),
or with --device by entering a code on any other device.

The login is stored as an oauth profile <provider>:<email> (or
<provider>:default) in auth-profiles.json (mode 0600); no token is
printed. The gateway refreshes it before it expires and when a provider
answers 401, each refresh token once across every process.

Providers: openai (the Codex sign-in for ChatGPT plans; its requests go to
the ChatGPT backend). Any other provider signs in once providers.<p>.oauth
in opensoul.yaml describes its OAuth client. Anthropic subscriptions use
claude setup-token instead (opensoul models auth setup-token).

Examples:
  opensoul models auth login --provider openai
  opensoul models auth login --provider openai --no-browser       # over SSH
  opensoul models auth login --provider acme --device --profile-id acme:work`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("login takes no arguments, got %q", args)
			}
			if err := validProvider(*provider); err != nil {
				return err
			}
			if *device && *noBrowser {
				return usageErr("--device and --no-browser are two different ways to sign in; choose one")
			}
			if err := a.load(); err != nil {
				return err
			}
			if *id != "" && (!strings.HasPrefix(*id, *provider+":") || len(*id) == len(*provider)+1) {
				return usageErr("--profile-id %q must look like %s:<name>", *id, *provider)
			}
			return a.signIn(ctx, signIn{provider: *provider, id: *id, agent: *agent, device: *device, noBrowser: *noBrowser, timeout: *timeout})
		},
	})
}

// signIn is one OAuth login: what `models auth login` and onboard's OAuth
// choice ask for.
type signIn struct {
	provider, id, agent string // id "": <provider>:<email>; agent "": agents.default
	device, noBrowser   bool
	timeout             time.Duration
}

// signIn runs the provider's OAuth flow and stores the login. The config
// must be loaded.
func (a *app) signIn(ctx context.Context, s signIn) error {
	ag, err := a.agentID(s.agent)
	if err != nil {
		return err
	}
	client, err := a.oauthClient(ctx, s.provider, s.device)
	if err != nil {
		return err
	}
	paste := s.noBrowser || (!s.device && !a.hasDisplay())
	if paste && !s.noBrowser {
		fmt.Fprintln(a.stderr, "No display found (or this is an SSH session): paste mode. Use --device if the provider offers it.")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tok, err := client.Login(ctx, oauth.LoginOptions{
		Out: a.stderr, Open: a.openBrowser, Paste: paste, In: a.stdin, Device: s.device,
	})
	if err != nil {
		return err
	}
	return a.saveLogin(ag, s.provider, s.id, tok)
}

// oauthClient is the provider's OAuth client from its module and config,
// or an error that says how to get one.
func (a *app) oauthClient(ctx context.Context, provider string, device bool) (oauth.Client, error) {
	reg, _, _ := a.registry(ctx)
	clients := a.cfg.OAuthClients(a.moduleOAuth(ctx, reg, provider))
	c, ok := clients[provider]
	if !ok {
		if st := providers.For(provider).SetupToken; st != nil {
			return c, fmt.Errorf("%s subscriptions sign in with a setup-token, not OAuth here: run `%s`, then `opensoul models auth setup-token --provider %s`", provider, st.Command, provider)
		}
		// Every module that declares a client, and config's.
		all := append(wasm.BuiltinNames(), slices.Collect(maps.Keys(a.modulePaths()))...)
		var known []string
		for name := range a.cfg.OAuthClients(a.moduleOAuth(ctx, reg, all...)) {
			known = append(known, name)
		}
		sort.Strings(known)
		return c, fmt.Errorf("no OAuth sign-in is known for provider %s (known: %s); describe its client under providers.%s.oauth in %s (authUrl, tokenUrl, clientId, scopes; see opensoul.yaml's example), or store a key with `opensoul models auth paste-token --provider %s`",
			provider, strings.Join(known, ", "), provider, a.cfgFile, provider)
	}
	if err := c.Validate(device); err != nil {
		return c, fmt.Errorf("providers.%s.oauth: %v", provider, err)
	}
	return c, nil
}

// moduleOAuth is the OAuth clients that the modules of providers
// declare in their info answer. A declaration that is not valid JSON for a
// client is warned about and skipped.
func (a *app) moduleOAuth(ctx context.Context, reg *wasm.Registry, providers ...string) map[string]oauth.Client {
	if reg == nil {
		return nil
	}
	out := map[string]oauth.Client{}
	for _, name := range providers {
		raw := reg.OAuth(ctx, name)
		if len(raw) == 0 {
			continue
		}
		var c oauth.Client
		if err := json.Unmarshal(raw, &c); err != nil {
			a.warnf("provider module %s: its info's oauth is not an OAuth client (%v); ignored", name, err)
			continue
		}
		out[name] = c
	}
	return out
}

// saveLogin stores a login under the lock and records it in opensoul.yaml.
// A new login replaces the profile, clearing a refused refresh.
func (a *app) saveLogin(agent, provider, id string, tok oauth.Token) error {
	if id == "" {
		id = provider + ":default"
		if tok.Email != "" {
			id = provider + ":" + tok.Email
		}
	}
	cred := store.Credential{Type: store.TypeOAuth, Provider: provider, Access: tok.Access, Refresh: tok.Refresh,
		Email: tok.Email, AccountID: tok.AccountID}
	if !tok.Expires.IsZero() {
		cred.Expires = tok.Expires.UnixMilli()
	}
	if err := a.st.UpdateProfiles(agent, func(p *store.Profiles) error {
		p.Profiles[id] = cred
		return nil
	}); err != nil {
		return err
	}
	a.resetUsage(agent, id)
	if err := upsertProfileMeta(a.cfgFile, id, provider, store.TypeOAuth); err != nil {
		a.warnf("saved the login, but could not record it in %s: %v", a.cfgFile, err)
	}
	who := tok.Email
	if who == "" {
		who = "(the provider did not say who)"
	}
	fmt.Fprintf(a.stdout, "Signed in to %s as %s.\n", provider, who)
	refresh := "no refresh token: sign in again when it expires"
	if tok.Refresh != "" {
		refresh = "refreshed automatically"
	}
	expiry := "no expiry given"
	if cred.Expires != 0 {
		expiry = "access token expires " + tok.Expires.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(a.stdout, "Saved %s (oauth; %s; %s) to %s\n", id, expiry, refresh, a.st.ProfilesPath(agent))
	fmt.Fprintf(a.stdout, "Recorded auth.profiles.%s in %s\n", id, a.cfgFile)
	fmt.Fprintln(a.stdout, "Check it with: opensoul models status")
	return nil
}

// resetUsage drops the cooldowns and disables of a profile whose secret
// was replaced: they were about the old one.
func (a *app) resetUsage(agent, id string) {
	if err := a.st.UpdateState(agent, func(st *store.State) error {
		u := st.UsageStats[id]
		if u == nil {
			return store.NoChange
		}
		st.UsageStats[id] = &store.UsageStats{LastUsed: u.LastUsed}
		return nil
	}); err != nil {
		a.warnf("saved the credential, but could not clear its old cooldowns: %v", err)
	}
}

// hasDisplay guesses whether a browser on this machine can be opened and
// reach the loopback redirect: not over SSH, and on Linux/BSD only with an
// X11 or Wayland display.
func (a *app) hasDisplay() bool {
	if a.environ["OPENSOUL_BROWSER"] != "" {
		return true
	}
	if a.environ["SSH_CONNECTION"] != "" || a.environ["SSH_TTY"] != "" {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	return a.environ["DISPLAY"] != "" || a.environ["WAYLAND_DISPLAY"] != ""
}

// openBrowser opens url with $OPENSOUL_BROWSER (a command given the URL
// as its one argument), else the system's opener.
func (a *app) openBrowser(url string) error {
	var cmd *exec.Cmd
	switch {
	case a.environ["OPENSOUL_BROWSER"] != "":
		cmd = exec.Command(a.environ["OPENSOUL_BROWSER"], url)
	case runtime.GOOS == "darwin":
		cmd = exec.Command("open", url)
	case runtime.GOOS == "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
