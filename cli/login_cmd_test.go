package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
	"github.com/opensoul/opensoul/gateway/store"
)

// loginEnv is a state dir whose config describes provider acme's OAuth
// client on a real authorization server.
func loginEnv(t *testing.T) (*env, *oauthtest.Server) {
	as := oauthtest.New(t)
	e := newEnv(t)
	e.writeFile("opensoul.yaml", `agents: {defaults: {model: {primary: acme/m1}}}
providers:
  acme:
    baseUrl: http://127.0.0.1:9
    oauth:
      authUrl: `+as.Client.AuthURL+`
      tokenUrl: `+as.Client.TokenURL+`
      deviceUrl: `+as.Client.DeviceURL+`
      clientId: `+as.Client.ClientID+`
      scopes: [openid, email, offline_access]
      accountIdClaim: [sub]
`)
	return e, as
}

// interact runs one command whose stderr the user reads and answers: each
// stderr line goes to answer, which may write to the command's stdin.
func (e *env) interact(answer func(line string, stdin io.Writer), args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	inR, inW := io.Pipe()
	errR, errW := io.Pipe()
	var out, errb bytes.Buffer
	environ := []string{"OPENSOUL_STATE_DIR=" + e.state}
	for k, v := range e.vars {
		environ = append(environ, k+"="+v)
	}
	done := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done <- run(ctx, args, inR, &out, errW, environ)
		errW.Close()
	}()
	var wg sync.WaitGroup
	sc := bufio.NewScanner(errR)
	for sc.Scan() {
		errb.WriteString(sc.Text() + "\n")
		wg.Add(1)
		go func(line string) { defer wg.Done(); answer(line, inW) }(sc.Text())
	}
	code = <-done
	inW.Close()
	wg.Wait()
	e.seen.Write(out.Bytes())
	e.seen.Write(errb.Bytes())
	return out.String(), errb.String(), code
}

func (e *env) login(id string) store.Credential {
	e.t.Helper()
	p, err := store.New(e.state).LoadProfiles("main")
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Profiles[id]
}

// pasteApproved answers the sign-in's printed authorization URL as a user
// would: approves it at the server and pastes the redirect it lands on.
func pasteApproved(t *testing.T, as *oauthtest.Server) func(string, io.Writer) {
	return func(line string, stdin io.Writer) {
		if u := strings.TrimSpace(line); strings.HasPrefix(u, as.URL+"/auth?") {
			loc, err := as.Approve(u)
			if err != nil {
				t.Error(err)
				return
			}
			io.WriteString(stdin, loc+"\n")
		}
	}
}

func TestLoginPastedRedirectStoresTheLogin(t *testing.T) {
	t.Parallel()
	e, as := loginEnv(t)
	out, errs, code := e.interact(pasteApproved(t, as), "models", "auth", "login", "--provider", "acme", "--no-browser")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	id := "acme:" + oauthtest.Email
	c := e.login(id)
	if c.Type != store.TypeOAuth || c.Access == "" || c.Refresh == "" || c.Expires == 0 || c.Email != oauthtest.Email || c.AccountID != "id1" {
		t.Fatalf("stored %s = %+v", id, redacted(c))
	}
	if strings.Contains(out+errs, c.Access) || strings.Contains(out+errs, c.Refresh) {
		t.Fatal("the login printed a token")
	}
	st, err := os.Stat(store.New(e.state).ProfilesPath("main"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("auth-profiles.json mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if !strings.Contains(out, "Saved "+id) {
		t.Errorf("output does not name the profile:\n%s", out)
	}
	// A refreshable login is fine for --check even past its access
	// token's expiry; a refused refresh is not, and says how to fix it.
	setLogin(t, e, id, func(c *store.Credential) { c.Expires = time.Now().Add(-time.Hour).UnixMilli() })
	if _, errs, code := e.run("", "models", "status", "--check"); code != 0 {
		out, _, _ := e.run("", "models", "status")
		t.Fatalf("--check on a refreshable login: exit %d\n%s\n%s", code, errs, out)
	}
	setLogin(t, e, id, func(c *store.Credential) {
		c.RefreshError = "refresh refused: oauth refresh: the provider answered invalid_grant; sign in again: opensoul models auth login --provider acme"
	})
	out, _, code = e.run("", "models", "status", "--check")
	if code != 1 || !strings.Contains(out, "invalid_grant") || !strings.Contains(out, "opensoul models auth login --provider acme") {
		t.Fatalf("--check on a refused login: exit %d\n%s", code, out)
	}
	e.assertNoSecrets()
}

func TestLoginDeviceCode(t *testing.T) {
	t.Parallel()
	e, as := loginEnv(t)
	re := regexp.MustCompile(`enter the code\s+(\S+)`)
	out, errs, code := e.interact(func(line string, _ io.Writer) {
		if m := re.FindStringSubmatch(line); m != nil {
			if err := as.ApproveDevice(m[1]); err != nil {
				t.Error(err)
			}
		}
	}, "models", "auth", "login", "--provider", "acme", "--device", "--profile-id", "acme:work")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if c := e.login("acme:work"); c.Type != store.TypeOAuth || c.Refresh == "" {
		t.Fatalf("stored acme:work = %+v", redacted(c))
	}
}

func TestLoginExplainsProvidersWithoutOAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, errs, code := e.run("", "models", "auth", "login", "--provider", "anthropic")
	if code == 0 || !strings.Contains(errs, "setup-token") {
		t.Fatalf("anthropic: exit %d: %s", code, errs)
	}
	_, errs, code = e.run("", "models", "auth", "login", "--provider", "openrouter")
	if code == 0 || !strings.Contains(errs, "providers.openrouter.oauth") {
		t.Fatalf("openrouter: exit %d: %s", code, errs)
	}
	_, errs, code = e.run("", "models", "auth", "login", "--provider", "openai", "--device")
	if code == 0 || !strings.Contains(errs, "no device login") {
		t.Fatalf("openai --device: exit %d: %s", code, errs)
	}
}

func setLogin(t *testing.T, e *env, id string, fn func(*store.Credential)) {
	t.Helper()
	err := store.New(e.state).UpdateProfiles("main", func(p *store.Profiles) error {
		c := p.Profiles[id]
		fn(&c)
		p.Profiles[id] = c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// redacted shows a credential without its tokens.
func redacted(c store.Credential) store.Credential {
	c.Access, c.Refresh = strings.Repeat("*", min(len(c.Access), 3)), strings.Repeat("*", min(len(c.Refresh), 3))
	return c
}

func TestImportCodexAndClaude(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	home := e.vars["HOME"]
	// A Codex id_token: {"email":"me@example.com","https://api.openai.com/auth":{"chatgpt_account_id":"acct-9"}}
	idTok := "e30.eyJlbWFpbCI6Im1lQGV4YW1wbGUuY29tIiwiaHR0cHM6Ly9hcGkub3BlbmFpLmNvbS9hdXRoIjp7ImNoYXRncHRfYWNjb3VudF9pZCI6ImFjY3QtOSJ9fQ.sig"
	codexAccess, codexRefresh := "codex-FIXTUREaccess-0123456789abcdef", "codex-FIXTURErefresh-0123456789abcdef"
	writeAbs(t, home+"/.codex/auth.json", `{"OPENAI_API_KEY":null,"tokens":{"id_token":"`+idTok+`","access_token":"`+codexAccess+`","refresh_token":"`+codexRefresh+`"},"last_refresh":"2026-11-30T10:00:00Z"}`)
	writeAbs(t, home+"/.claude/.credentials.json", `{"claudeAiOauth":{"accessToken":"`+fixSetupToken+`","refreshToken":"sk-ant-ort01-FIXTUREr","expiresAt":4102444800000,"scopes":["user:inference"],"subscriptionType":"max"}}`)
	out := e.ok("", "models", "auth", "import", "codex")
	e.ok("", "models", "auth", "import", "claude", "--write-back")
	if strings.Contains(out, codexAccess) || strings.Contains(out, codexRefresh) {
		t.Fatal("import printed a token")
	}
	c := e.login("openai:codex")
	if c.Type != store.TypeOAuth || c.Access != codexAccess || c.Email != "me@example.com" || c.AccountID != "acct-9" ||
		c.External == nil || c.External.Source != "codex" || c.External.WriteBack || c.Refreshable() {
		t.Fatalf("openai:codex = %+v", redacted(c))
	}
	a := e.login("anthropic:claude")
	if a.Access != fixSetupToken || a.Expires != 4102444800000 || a.External == nil || !a.External.WriteBack {
		t.Fatalf("anthropic:claude = %+v", redacted(a))
	}
	if _, errs, code := e.run("", "models", "auth", "import", "gemini"); code != 2 || !strings.Contains(errs, "codex or claude") {
		t.Fatalf("unknown source: exit %d %s", code, errs)
	}
	// A profile id of another provider is a usage error (exit 2), checked
	// after the file is read.
	if _, errs, code := e.run("", "models", "auth", "import", "codex", "--profile-id", "anthropic:x"); code != 2 || !strings.Contains(errs, `--profile-id "anthropic:x" must look like openai:<name>`) {
		t.Fatalf("foreign profile id: exit %d %s", code, errs)
	}
	if _, errs, code := e.run("", "models", "auth", "import", "codex", "--path", home+"/nowhere.json", "--profile-id", "anthropic:x"); code != 1 || !strings.Contains(errs, "import codex") {
		t.Fatalf("missing file before a foreign profile id: exit %d %s", code, errs)
	}
	e.assertNoSecrets()
}

func writeAbs(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The openai sign-in comes from the built-in openai module's info answer
// (the Codex CLI's client), and config overrides it field by field: the
// authorize URL carries the module's client id, redirect, scopes and
// parameters with config's authorize endpoint.
func TestLoginOpenAIClientComesFromTheModule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile("opensoul.yaml", "providers:\n  openai:\n    oauth:\n      authUrl: http://127.0.0.1:9/authorize\n")
	var authURL string
	_, errs, code := e.interact(func(line string, stdin io.Writer) {
		if u := strings.TrimSpace(line); strings.HasPrefix(u, "http://127.0.0.1:9/authorize?") {
			authURL = u
			io.WriteString(stdin, "not a redirect\n")
		}
	}, "models", "auth", "login", "--provider", "openai", "--no-browser", "--timeout", "30s")
	if code == 0 || authURL == "" {
		t.Fatalf("exit %d, authorize URL %q\n%s", code, authURL, errs)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"client_id":                  "app_EMoamEEZ73f0CkXaXp7hrann",
		"redirect_uri":               "http://localhost:1455/auth/callback",
		"scope":                      "openid profile email offline_access",
		"codex_cli_simplified_flow":  "true",
		"id_token_add_organizations": "true",
		"code_challenge_method":      "S256",
	} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	// The module declares no RFC 8628 endpoint for Codex.
	if _, errs, code := e.run("", "models", "auth", "login", "--provider", "openai", "--device"); code == 0 || !strings.Contains(errs, "no device login") {
		t.Errorf("--device: exit %d\n%s", code, errs)
	}
}
