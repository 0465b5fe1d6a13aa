// Package login brings credentials in by signing in and tries them:
// `models auth login` (OAuth in a browser, by a pasted redirect or a
// device code), `models auth import` (a provider CLI's login shared as an
// externally managed profile) and `models status --probe` (one real,
// smallest request per profile, presented as the gateway presents it).
// It stores each login under the store's lock and clears what was
// recorded about the old secret. It receives what it needs from the CLI
// through Host and never imports cli; the commands (flags, --help) are
// cli/login_cmd.go, cli/import_cmd.go and cli/models_cmd.go, as
// cli/connect_cmd.go is for cli/connect.
package login

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/oauth"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
)

// Host is what a sign-in or an import needs from the CLI, with the
// config loaded.
type Host struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Environ        map[string]string // this process's environment
	Store          *store.Store
	ConfigFile     string
	// Record records a profile as auth.profiles.<id> in ConfigFile.
	Record func(id, provider, typ string) error
	Warnf  func(format string, args ...any) // the CLI's "opensoul: warning: …"
	// Clients are the OAuth clients of providers, from their modules and
	// config (config wins), as the gateway uses them.
	Clients func(ctx context.Context, providers ...string) map[string]oauth.Client
	// Modules are the providers with a module, built in or configured:
	// those whose modules may declare an OAuth client.
	Modules func() []string
	// Prober presents credentials the way `opensoul gateway` would with
	// this config (Probe).
	Prober func(ctx context.Context) (*gateway.Prober, error)
}

// Request is one OAuth login: what `models auth login` and onboard's
// OAuth choice ask for.
type Request struct {
	Provider  string
	ID        string // "": <provider>:<email>, else <provider>:default
	Device    bool   // the device code flow
	NoBrowser bool   // paste the address the browser ends on
	Timeout   time.Duration
}

// SignIn runs the provider's OAuth flow and stores the login as a
// profile of agent.
func (h *Host) SignIn(ctx context.Context, agent string, s Request) error {
	client, err := h.oauthClient(ctx, s.Provider, s.Device)
	if err != nil {
		return err
	}
	paste := s.NoBrowser || (!s.Device && !h.hasDisplay())
	if paste && !s.NoBrowser {
		fmt.Fprintln(h.Stderr, "No display found (or this is an SSH session): paste mode. Use --device if the provider offers it.")
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	tok, err := client.Login(ctx, oauth.LoginOptions{
		Out: h.Stderr, Open: h.openBrowser, Paste: paste, In: h.Stdin, Device: s.Device,
	})
	if err != nil {
		return err
	}
	return h.saveLogin(agent, s.Provider, s.ID, tok)
}

// oauthClient is the provider's OAuth client from its module and config,
// or an error that says how to get one.
func (h *Host) oauthClient(ctx context.Context, provider string, device bool) (oauth.Client, error) {
	c, ok := h.Clients(ctx, provider)[provider]
	if !ok {
		if st := providers.For(provider).SetupToken; st != nil {
			return c, fmt.Errorf("%s subscriptions sign in with a setup-token, not OAuth here: run `%s`, then `opensoul models auth setup-token --provider %s`", provider, st.Command, provider)
		}
		// Every module that declares a client, and config's.
		var known []string
		for name := range h.Clients(ctx, h.Modules()...) {
			known = append(known, name)
		}
		sort.Strings(known)
		return c, fmt.Errorf("no OAuth sign-in is known for provider %s (known: %s); describe its client under providers.%s.oauth in %s (authUrl, tokenUrl, clientId, scopes; see opensoul.yaml's example), or store a key with `opensoul models auth paste-token --provider %s`",
			provider, strings.Join(known, ", "), provider, h.ConfigFile, provider)
	}
	if err := c.Validate(device); err != nil {
		return c, fmt.Errorf("providers.%s.oauth: %v", provider, err)
	}
	return c, nil
}

// saveLogin stores a login under the lock and records it in opensoul.yaml.
// A new login replaces the profile, clearing a refused refresh.
func (h *Host) saveLogin(agent, provider, id string, tok oauth.Token) error {
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
	if err := h.Store.UpdateProfiles(agent, func(p *store.Profiles) error {
		p.Profiles[id] = cred
		return nil
	}); err != nil {
		return err
	}
	h.ResetUsage(agent, id)
	if err := h.Record(id, provider, store.TypeOAuth); err != nil {
		h.Warnf("saved the login, but could not record it in %s: %v", h.ConfigFile, err)
	}
	who := tok.Email
	if who == "" {
		who = "(the provider did not say who)"
	}
	fmt.Fprintf(h.Stdout, "Signed in to %s as %s.\n", provider, who)
	refresh := "no refresh token: sign in again when it expires"
	if tok.Refresh != "" {
		refresh = "refreshed automatically"
	}
	expiry := "no expiry given"
	if cred.Expires != 0 {
		expiry = "access token expires " + tok.Expires.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(h.Stdout, "Saved %s (oauth; %s; %s) to %s\n", id, expiry, refresh, h.Store.ProfilesPath(agent))
	fmt.Fprintf(h.Stdout, "Recorded auth.profiles.%s in %s\n", id, h.ConfigFile)
	fmt.Fprintln(h.Stdout, "Check it with: opensoul models status")
	return nil
}

// ResetUsage drops the cooldowns and disables of a profile whose secret
// was replaced: they were about the old one. A failure is warned about.
func (h *Host) ResetUsage(agent, id string) {
	if err := h.Store.UpdateState(agent, func(st *store.State) error {
		u := st.UsageStats[id]
		if u == nil {
			return store.NoChange
		}
		st.UsageStats[id] = &store.UsageStats{LastUsed: u.LastUsed}
		return nil
	}); err != nil {
		h.Warnf("saved the credential, but could not clear its old cooldowns: %v", err)
	}
}

// hasDisplay guesses whether a browser on this machine can be opened and
// reach the loopback redirect: not over SSH, and on Linux/BSD only with an
// X11 or Wayland display.
func (h *Host) hasDisplay() bool {
	if h.Environ["OPENSOUL_BROWSER"] != "" {
		return true
	}
	if h.Environ["SSH_CONNECTION"] != "" || h.Environ["SSH_TTY"] != "" {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	return h.Environ["DISPLAY"] != "" || h.Environ["WAYLAND_DISPLAY"] != ""
}

// openBrowser opens url with $OPENSOUL_BROWSER (a command given the URL
// as its one argument), else the system's opener.
func (h *Host) openBrowser(url string) error {
	var cmd *exec.Cmd
	switch {
	case h.Environ["OPENSOUL_BROWSER"] != "":
		cmd = exec.Command(h.Environ["OPENSOUL_BROWSER"], url)
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
