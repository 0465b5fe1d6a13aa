package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/opensoul/opensoul/cli/service"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
)

// The ways into OpenSoul that onboard offers (--auth).
const (
	authAPIKey     = "api-key"     // a provider API key, in <state>/.env or as a profile
	authSetupToken = "setup-token" // a Claude subscription setup-token, as a profile
	authToken      = "token"       // a token pasted for any provider, as a profile
	authOAuth      = "oauth"       // a browser login (when a.oauthLogin is wired)
)

// onboardOptions are onboard's non-interactive choices.
type onboardOptions struct {
	auth      string // one of the auth* ways; "" for none
	provider  string
	store     string // api-key: "env" (<state>/.env) or "profile"
	profileID string
	expiresIn string
	agent     string
	install   bool // install and start the gateway service at the end
}

// onboardWith stores one credential the way o says, the secret read
// from stdin (or typed without echo on a terminal).
func (a *app) onboardWith(ctx context.Context, o onboardOptions) error {
	switch o.auth {
	case "":
		return nil
	case authAPIKey, authToken, authOAuth:
		if err := validProvider(o.provider); err != nil {
			return err
		}
	case authSetupToken:
		o.provider = cmp.Or(o.provider, "anthropic")
		if providers.For(o.provider).SetupToken == nil {
			return usageErr("--provider %s has no setup-tokens; use --auth token", o.provider)
		}
	default:
		return usageErr("--auth: want %s, %s, %s or %s, got %q", authAPIKey, authSetupToken, authToken, authOAuth, o.auth)
	}
	if o.auth == authOAuth {
		if a.oauthLogin == nil {
			return usageErr("OAuth login is not in this build yet; use --auth setup-token (Claude subscription), --auth token or --auth api-key")
		}
		return a.oauthLogin(ctx, o.provider)
	}
	if o.auth == authAPIKey && cmp.Or(o.store, "env") == "env" {
		raw, err := a.readSecret(fmt.Sprintf("%s API key (input hidden): ", o.provider))
		if err != nil {
			return err
		}
		return a.storeEnvKey(filepath.Join(a.st.Dir, ".env"), o.provider, raw)
	}
	if o.store != "" && o.store != "env" && o.store != "profile" {
		return usageErr("--store: want env or profile, got %q", o.store)
	}
	return a.onboardProfile(ctx, o)
}

// onboardProfile stores a key or token as a profile.
func (a *app) onboardProfile(ctx context.Context, o onboardOptions) error {
	ag, err := a.agentID(o.agent)
	if err != nil {
		return err
	}
	opts := saveOptions{agent: ag, provider: o.provider, id: cmp.Or(o.profileID, o.provider+":default"), typ: store.TypeToken, typeGiven: true}
	if !strings.HasPrefix(opts.id, o.provider+":") {
		return usageErr("--profile-id %q must look like %s:<name>", opts.id, o.provider)
	}
	if o.auth == authAPIKey {
		opts.typ = store.TypeAPIKey
	}
	if o.expiresIn != "" {
		d, err := parseExpiresIn(o.expiresIn)
		if err != nil {
			return usageErr("%v", err)
		}
		opts.expires = a.now().Add(d).UnixMilli()
	}
	what := map[string]string{authAPIKey: "API key", authToken: "token", authSetupToken: "setup-token (from `claude setup-token`)"}[o.auth]
	raw, err := a.readSecret(fmt.Sprintf("Paste the %s %s (input hidden): ", o.provider, what))
	if err != nil {
		return err
	}
	if opts.secret, err = normalizeSecret(raw); err != nil {
		return err
	}
	if o.auth == authSetupToken {
		if err := checkSetupTokenShape(providers.For(o.provider), opts.secret); err != nil {
			return err
		}
	}
	_, opts.interactive = isTerminal(a.stdin)
	return a.saveCredential(ctx, opts)
}

// onboardMenu asks, on a terminal, for as many ways in as the user wants.
func (a *app) onboardMenu(ctx context.Context) error {
	for {
		fmt.Fprintf(a.stderr, `
Add a credential:
  1) API key (Anthropic, OpenAI, OpenRouter, …)
  2) Claude subscription setup-token (run `+"`claude setup-token`"+` first)
  3) Paste a token for any provider
  4) %s
  Enter) done
`, a.oauthMenuLine())
		choice, err := a.ask("Choice: ")
		if err != nil || choice == "" {
			return err
		}
		o, err := a.askOnboardChoice(choice)
		if err == nil {
			err = a.onboardWith(ctx, o)
		}
		if err != nil {
			// One failed entry does not end onboarding: say why and ask again.
			fmt.Fprintf(a.stderr, "Not saved: %v\n", err)
		}
	}
}

func (a *app) oauthMenuLine() string {
	if a.oauthLogin == nil {
		return "OAuth login in the browser (not in this build yet)"
	}
	return "OAuth login in the browser"
}

// askOnboardChoice asks what the chosen way needs besides the secret.
func (a *app) askOnboardChoice(choice string) (onboardOptions, error) {
	var o onboardOptions
	var err error
	switch choice {
	case "1":
		o.auth = authAPIKey
		if o.provider, err = a.askDefault("Provider", "anthropic"); err != nil {
			return o, err
		}
		where, err := a.askDefault("Keep it in <state>/.env, where the gateway service reads it (e), or as a profile (p)?", "e")
		if err != nil {
			return o, err
		}
		o.store = map[bool]string{true: "profile", false: "env"}[strings.HasPrefix(strings.ToLower(where), "p")]
	case "2":
		o.auth = authSetupToken
	case "3":
		o.auth = authToken
		if o.provider, err = a.askDefault("Provider", ""); err != nil {
			return o, err
		}
		if o.expiresIn, err = a.askDefault("Expires in (like 8h or 365d; Enter if it does not expire)", ""); err != nil {
			return o, err
		}
	case "4":
		o.auth = authOAuth
		if o.provider, err = a.askDefault("Provider", "openai"); err != nil {
			return o, err
		}
	default:
		return o, fmt.Errorf("no choice %q; type 1, 2, 3 or 4, or Enter when done", choice)
	}
	return o, nil
}

// ask reads one line from stdin after a prompt on stderr. It reads a byte
// at a time so that nothing meant for a later hidden prompt is consumed.
func (a *app) ask(prompt string) (string, error) {
	fmt.Fprint(a.stderr, prompt)
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := a.stdin.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSpace(b.String()), nil
			}
			b.WriteByte(buf[0])
		}
		if errors.Is(err, io.EOF) {
			return strings.TrimSpace(b.String()), nil
		}
		if err != nil {
			return "", err
		}
	}
}

func (a *app) askDefault(question, def string) (string, error) {
	prompt := question + ": "
	if def != "" {
		prompt = fmt.Sprintf("%s [%s]: ", question, def)
	}
	v, err := a.ask(prompt)
	return cmp.Or(v, def), err
}

// onboardService installs and starts the gateway service when asked to
// (install), or offers it on a terminal.
func (a *app) onboardService(ctx context.Context, install, interactive bool) error {
	if !install && interactive {
		svc, err := a.service()
		if errors.Is(err, service.ErrUnsupported) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := svc.Installed(); err == nil {
			fmt.Fprintf(a.stdout, "Gateway service: installed (%s); see it with: opensoul gateway status\n", svc.Path())
			return nil
		}
		yes, err := a.askDefault("Install the gateway as a "+svc.Kind()+" and start it now? (y/n)", "y")
		if err != nil {
			return err
		}
		install = strings.HasPrefix(strings.ToLower(yes), "y")
	}
	if !install {
		return nil
	}
	return a.install(ctx, "", false)
}

// onboardStatus ends onboarding with `models status`, on the config
// loaded again: a key saved to <state>/.env during onboarding is in it.
// Only warnings the first load did not print are printed.
func (a *app) onboardStatus(ctx context.Context, agent string) error {
	l, err := loadConfig(a.configSource())
	if err != nil {
		return err
	}
	printed := map[string]bool{}
	if a.cur != nil {
		for _, w := range a.cur.Warnings {
			printed[w] = true
		}
	}
	stderr := a.stderr
	a.stderr = io.Discard
	a.use(l)
	a.stderr = stderr
	for _, w := range l.Warnings {
		if !printed[w] {
			a.warnf("%s", w)
		}
	}
	rep, err := a.buildStatus(ctx, agent, a.now())
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\nopensoul models status:")
	rep.writeText(a.stdout, a.now())
	return nil
}
