package gateway_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// TestMain lets the test binary play the other processes of the
// multi-process refresh test (see refreshHelper).
func TestMain(m *testing.M) {
	if mode := os.Getenv("OPENSOUL_REFRESH_HELPER"); mode != "" {
		os.Exit(refreshHelper(mode))
	}
	os.Exit(m.Run())
}

// oauthUpstream is an OpenAI-shaped provider that accepts a bearer only
// while the authorization server says it is a live access token, and
// records which tokens it saw.
type oauthUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []string
	hdr   []http.Header
	paths []string
}

func newOAuthUpstream(t testing.TB, as *oauthtest.Server) *oauthUpstream {
	u := &oauthUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		u.mu.Lock()
		u.seen = append(u.seen, tok)
		u.hdr = append(u.hdr, r.Header.Clone())
		u.paths = append(u.paths, r.URL.Path)
		u.mu.Unlock()
		if !as.Valid(tok) {
			writeJSON(w, 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`, nil)
			return
		}
		writeJSON(w, 200, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, nil)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *oauthUpstream) tokens() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func loginCred(tok oauth.Token, expires time.Time) store.Credential {
	return store.Credential{Type: store.TypeOAuth, Provider: "openai", Access: tok.Access, Refresh: tok.Refresh,
		Expires: expires.UnixMilli(), Email: tok.Email, AccountID: tok.AccountID}
}

// oauthFixture is a gateway whose openai logins refresh against as.
func oauthFixture(t *testing.T, as *oauthtest.Server) (*fixture, *oauthUpstream) {
	up := newOAuthUpstream(t, as)
	// The openai module sends logins to the ChatGPT backend; config's
	// providers.openai.oauth.baseUrl keeps them on the test upstream.
	client := as.Client
	client.BaseURL = up.URL
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.Providers["openai"] = gateway.Upstream{BaseURL: up.URL}
		c.OAuth = map[string]oauth.Client{"openai": client}
	}))
	return f, up
}

// chatIn sends a chat completion in session (the default one when empty).
func (f *fixture) chatIn(session string) (*http.Response, string) {
	h := map[string]string{"Authorization": "Bearer " + gatewayToken}
	if session != "" {
		h["x-opensoul-session"] = session
	}
	return f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, h)
}

func (f *fixture) stored(id string) store.Credential {
	f.t.Helper()
	p, err := f.st.LoadProfiles("main")
	if err != nil {
		f.t.Fatal(err)
	}
	return p.Profiles[id]
}

// A login within the skew of its expiry is refreshed before it is used.
func TestOAuthRefreshBeforeExpiry(t *testing.T) {
	as := oauthtest.New(t)
	f, up := oauthFixture(t, as)
	tok := as.Login(t)
	f.profiles("main", map[string]store.Credential{"openai:me": loginCred(tok, f.clock.Now().Add(time.Minute))}, nil)

	resp, body := f.chatIn("")
	if resp.StatusCode != 200 || resp.Header.Get("X-Opensoul-Attempts") != "1" {
		t.Fatalf("status %d, attempts %s: %s", resp.StatusCode, resp.Header.Get("X-Opensoul-Attempts"), body)
	}
	got := f.stored("openai:me")
	if as.RefreshGrants() != 1 || got.Access == tok.Access || got.Refresh == tok.Refresh {
		t.Fatalf("grants %d; stored login rotated: access %v refresh %v", as.RefreshGrants(), got.Access != tok.Access, got.Refresh != tok.Refresh)
	}
	if seen := up.tokens(); len(seen) != 1 || seen[0] != got.Access {
		t.Fatal("the upstream did not get the refreshed access token (only)")
	}
	// Fresh now: the next request spends nothing.
	f.chatIn("")
	if as.RefreshGrants() != 1 {
		t.Fatalf("a fresh login was refreshed again (%d grants)", as.RefreshGrants())
	}
	if strings.Contains(f.logs.String(), got.Access) || strings.Contains(f.logs.String(), got.Refresh) {
		t.Fatal("a token reached the log")
	}
}

// An upstream 401 on a login that is not yet due makes the gateway refresh
// once and retry with the new token; the client sees one attempt.
func TestOAuthRefreshOn401(t *testing.T) {
	as := oauthtest.New(t)
	f, up := oauthFixture(t, as)
	tok := as.Login(t)
	// Another client of the same lineage refreshed behind OpenSoul's back
	// without reuse: the access token died, the refresh token is ours.
	// Revoking the access token alone does that on this server.
	if err := as.RevokeAccess(tok.Access); err != nil {
		t.Fatal(err)
	}
	f.profiles("main", map[string]store.Credential{"openai:me": loginCred(tok, f.clock.Now().Add(time.Hour))}, nil)

	resp, body := f.chatIn("")
	if resp.StatusCode != 200 || resp.Header.Get("X-Opensoul-Attempts") != "1" {
		t.Fatalf("status %d, attempts %s: %s", resp.StatusCode, resp.Header.Get("X-Opensoul-Attempts"), body)
	}
	if as.RefreshGrants() != 1 || len(up.tokens()) != 2 {
		t.Fatalf("grants %d, upstream calls %d; want one refresh and one retry", as.RefreshGrants(), len(up.tokens()))
	}
}

// One of three logins dies mid-run (its refresh token is revoked): every
// request still succeeds, none with more than one failed attempt, and the
// dead login is marked expired with the provider's error and the fix.
func TestOAuthLoginDiesMidRun(t *testing.T) {
	as := oauthtest.New(t)
	f, up := oauthFixture(t, as)
	toks := map[string]oauth.Token{}
	creds := map[string]store.Credential{}
	for _, id := range []string{"openai:a", "openai:b", "openai:c"} {
		toks[id] = as.Login(t)
		creds[id] = loginCred(toks[id], f.clock.Now().Add(time.Hour))
	}
	f.profiles("main", creds, nil)
	// Four sessions, each pinned to the login that first served it; the
	// login that dies is the one serving the default session.
	var before int
	dying := ""
	for i := 0; i < 30; i++ {
		if i == 10 {
			as.Revoke(toks[dying].Refresh) // also ends its access token
			before = len(up.tokens())
		}
		resp, body := f.chatIn("s" + strconv.Itoa(i%4))
		if i == 0 {
			dying = resp.Header.Get("X-Opensoul-Profile")
		}
		n, _ := strconv.Atoi(resp.Header.Get("X-Opensoul-Attempts"))
		if resp.StatusCode != 200 || n > 2 {
			t.Fatalf("request %d: status %d after %d attempts: %s", i, resp.StatusCode, n, body)
		}
		f.clock.Advance(time.Second)
	}
	dead := f.stored(dying)
	if dead.RefreshError == "" || !strings.Contains(dead.RefreshError, "invalid_grant") || !strings.Contains(dead.RefreshError, "opensoul models auth login --provider openai") {
		t.Fatalf("refreshError = %q, want the provider's error and the fixing command", dead.RefreshError)
	}
	if st := gateway.ProfileStatus(dead, f.clock.Now()); st != gateway.StatusExpired {
		t.Fatalf("status = %s, want expired", st)
	}
	// The dead login was tried upstream at most once after it died.
	after := 0
	for _, s := range up.tokens()[before:] {
		if s == toks[dying].Access {
			after++
		}
	}
	if as.RefreshAttempts() != 1 || after > 1 {
		t.Fatalf("refresh attempts %d (want 1: the dead token is not presented again); b's token used %d times", as.RefreshAttempts(), after)
	}
	if !strings.Contains(f.logs.String(), "oauth login expired") {
		t.Error("the log does not say the login expired")
	}
	mresp, metrics := f.do("GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + gatewayToken})
	mresp.Body.Close()
	if !strings.Contains(metrics, `opensoul_oauth_refreshes_total{provider="openai",result="dead"} 1`) {
		t.Error("metrics do not count the refused refresh")
	}
}

// A ChatGPT-plan style login goes to its client's base URL with the
// account id header.
func TestOAuthLoginUpstreamFromTheModule(t *testing.T) {
	as := oauthtest.New(t)
	up := newOAuthUpstream(t, as)
	mods := &backendAt{Registry: providerModules(t), real: "https://chatgpt.com/backend-api/codex", test: up.URL + "/backend-api/codex"}
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		o.Modules = mods
		o.Config.OAuth = map[string]oauth.Client{"openai": {TokenURL: as.Client.TokenURL, ClientID: as.Client.ClientID}}
	})
	tok := as.Login(t)
	f.profiles("main", map[string]store.Credential{"openai:me": loginCred(tok, f.clock.Now().Add(time.Hour))}, nil)
	resp, body := f.chatIn("")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.hdr) != 1 || up.hdr[0].Get("chatgpt-account-id") != tok.AccountID || tok.AccountID == "" {
		t.Fatalf("upstream saw %d requests; chatgpt-account-id = %q, want %q from the module", len(up.hdr), up.hdr[0].Get("chatgpt-account-id"), tok.AccountID)
	}
	if len(mods.swapped()) != 1 {
		t.Fatal("the openai module did not name the ChatGPT backend for the login")
	}
	if len(up.paths) != 1 || up.paths[0] != "/backend-api/codex/chat/completions" {
		t.Fatalf("paths = %v, want the ChatGPT backend's (no /v1)", up.paths)
	}
	if len(f.openai.requests()) != 0 {
		t.Fatal("the login went to the provider's API-key base URL")
	}
}

// backendAt is the real provider modules, with the ChatGPT backend the
// openai module names for a login swapped for a test upstream (after
// checking that the module named it).
type backendAt struct {
	*wasm.Registry
	real, test string
	mu         sync.Mutex
	seen       []string
}

func (b *backendAt) Headers(ctx context.Context, provider string, req wasm.HeadersRequest) (wasm.HeadersResult, error) {
	h, err := b.Registry.Headers(ctx, provider, req)
	if h.BaseURL == b.real {
		h.BaseURL = b.test
		b.mu.Lock()
		b.seen = append(b.seen, h.BaseURL)
		b.mu.Unlock()
	}
	return h, err
}

func (b *backendAt) swapped() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

func TestOAuthLoginUpstreamAndHeaders(t *testing.T) {
	as := oauthtest.New(t)
	up := newOAuthUpstream(t, as)
	client := as.Client
	client.BaseURL = up.URL + "/backend-api/codex"
	client.StripPrefix = "/v1"
	client.Headers = map[string]string{"chatgpt-account-id": "{accountId}"}
	f := newFixture(t, withConfig(func(c *gateway.Config) {
		c.OAuth = map[string]oauth.Client{"openai": client}
	}))
	tok := as.Login(t)
	f.profiles("main", map[string]store.Credential{"openai:me": loginCred(tok, f.clock.Now().Add(time.Hour))}, nil)
	resp, body := f.chatIn("")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	up.mu.Lock()
	h := up.hdr[0]
	up.mu.Unlock()
	if h.Get("chatgpt-account-id") != tok.AccountID || tok.AccountID == "" {
		t.Fatalf("chatgpt-account-id = %q, want %q", h.Get("chatgpt-account-id"), tok.AccountID)
	}
	if len(f.openai.requests()) != 0 {
		t.Fatal("the login went to the provider's API-key base URL")
	}
}

// Eight CLI processes and two gateways need a refresh of the same login
// at the same moment: the server sees exactly one refresh grant and every
// process ends with its token.
func TestOAuthRefreshAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	as := oauthtest.New(t)
	dir := t.TempDir()
	st := store.New(dir)
	tok := as.Login(t)
	err := st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["openai:me"] = loginCred(tok, time.Now().Add(time.Minute)) // due: within the 5 min skew
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := json.Marshal(as.Client)
	type proc struct {
		mode  string
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var procs []proc
	for i := 0; i < 10; i++ {
		mode := "cli"
		if i >= 8 {
			mode = "gateway"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "OPENSOUL_REFRESH_HELPER="+mode, "OPENSOUL_STATE="+dir,
			"OPENSOUL_OAUTH_CLIENT="+string(client), "OPENSOUL_AS_URL="+as.URL)
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		procs = append(procs, proc{mode, cmd, stdin, bufio.NewScanner(stdout)})
	}
	// Every process has read the login (and the gateways loaded their
	// snapshot) before any is let go.
	for i, p := range procs {
		if !p.out.Scan() || p.out.Text() != "ready" {
			t.Fatalf("process %d did not get ready: %q", i, p.out.Text())
		}
	}
	for _, p := range procs {
		io.WriteString(p.stdin, "go\n")
	}
	got := make([]string, len(procs))
	for i, p := range procs {
		if p.out.Scan() {
			got[i] = p.out.Text()
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("process %d (%s): %v", i, p.mode, err)
		}
	}
	final, err := st.LoadProfiles("main")
	if err != nil {
		t.Fatal(err)
	}
	want := fingerprint(final.Profiles["openai:me"].Access)
	for i, p := range procs {
		if got[i] != want {
			t.Errorf("process %d (%s) ended with %q, want the stored token %s", i, p.mode, got[i], want)
		}
	}
	if as.RefreshAttempts() != 1 || as.RefreshGrants() != 1 || as.Reuses() != 0 {
		t.Fatalf("the server saw %d refresh grants (%d granted, %d reuses); want exactly one", as.RefreshAttempts(), as.RefreshGrants(), as.Reuses())
	}
	if fingerprint(tok.Access) == want {
		t.Fatal("nobody refreshed")
	}
}

func fingerprint(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// refreshHelper is one process of TestOAuthRefreshAcrossProcesses. "cli"
// refreshes the way CLI commands do (a Refresher over the store); "gateway"
// runs a gateway and sends one request through it. Each prints "ready"
// once it has read the login, waits for "go", then prints a fingerprint of
// the access token it ended up using.
func refreshHelper(mode string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, mode+":", err); return 1 }
	var client oauth.Client
	if err := json.Unmarshal([]byte(os.Getenv("OPENSOUL_OAUTH_CLIENT")), &client); err != nil {
		return fail(err)
	}
	st := store.New(os.Getenv("OPENSOUL_STATE"))
	in := bufio.NewScanner(os.Stdin)
	switch mode {
	case "cli":
		p, err := st.LoadProfiles("main")
		if err != nil {
			return fail(err)
		}
		seen := p.Profiles["openai:me"]
		r := &keep.Refresher{Store: st, Client: func(string) (oauth.Client, bool) { return client, true }}
		fmt.Println("ready")
		in.Scan()
		c, err := r.Fresh(context.Background(), "main", "openai:me", seen, false)
		if err != nil {
			return fail(err)
		}
		fmt.Println(fingerprint(c.Access))
		return 0
	case "gateway":
		var mu sync.Mutex
		var used string
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			used = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			mu.Unlock()
			writeJSON(w, 200, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[]}`, nil)
		}))
		defer up.Close()
		engine, err := policy.New(context.Background(), policy.Options{})
		if err != nil {
			return fail(err)
		}
		gw, err := gateway.New(gateway.Options{
			Store: st, Selector: engine, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Config: gateway.Config{Providers: map[string]gateway.Upstream{"openai": {BaseURL: up.URL}},
				OAuth: map[string]oauth.Client{"openai": client}},
		})
		if err != nil {
			return fail(err)
		}
		defer gw.Close()
		if _, err := gw.Snapshot("main"); err != nil {
			return fail(err)
		}
		srv := httptest.NewServer(gw)
		defer srv.Close()
		fmt.Println("ready")
		in.Scan()
		resp, err := http.Post(srv.URL+"/openai/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		if err != nil {
			return fail(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fail(fmt.Errorf("HTTP %d: %s", resp.StatusCode, body))
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Println(fingerprint(used))
		return 0
	}
	return fail(fmt.Errorf("unknown mode"))
}

// writeCodexAuth writes a Codex CLI auth.json holding tok, as the CLI does.
func writeCodexAuth(t *testing.T, path string, tok oauth.Token) {
	t.Helper()
	doc := map[string]any{"OPENAI_API_KEY": nil, "last_refresh": time.Now().UTC().Format(time.RFC3339Nano),
		"tokens": map[string]any{"id_token": "", "access_token": tok.Access, "refresh_token": tok.Refresh, "account_id": "acct-1"}}
	data, _ := json.Marshal(doc)
	if err := store.WriteFileAtomic(path, data); err != nil {
		t.Fatal(err)
	}
}

// The Codex CLI rotates the login while the gateway runs: the gateway
// takes the new lineage from the file and never sends the old refresh
// token (which the server would answer with reuse detection).
func TestOAuthExternalLoginFollowsItsFile(t *testing.T) {
	as := oauthtest.New(t)
	f, up := oauthFixture(t, as)
	path := t.TempDir() + "/auth.json"
	first := as.Login(t)
	writeCodexAuth(t, path, first)
	c, err := keep.ReadExternal(keep.SourceCodex, path)
	if err != nil {
		t.Fatal(err)
	}
	c.External = &store.External{Source: keep.SourceCodex, Path: path}
	f.profiles("main", map[string]store.Credential{"openai:codex": c}, nil)
	if resp, body := f.chatIn(""); resp.StatusCode != 200 {
		t.Fatalf("before the rotation: %d %s", resp.StatusCode, body)
	}

	// The Codex CLI refreshes: the old access and refresh tokens die.
	second, err := as.Client.Refresh(context.Background(), nil, first.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	writeCodexAuth(t, path, second)
	resp, body := f.chatIn("")
	if resp.StatusCode != 200 || resp.Header.Get("X-Opensoul-Attempts") != "1" {
		t.Fatalf("after the rotation: %d (attempts %s) %s", resp.StatusCode, resp.Header.Get("X-Opensoul-Attempts"), body)
	}
	if seen := up.tokens(); seen[len(seen)-1] != second.Access {
		t.Fatal("the gateway did not send the file's new access token")
	}
	if as.Reuses() != 0 || as.RefreshAttempts() != 1 {
		t.Fatalf("reuses %d, refresh grants %d: the gateway spent a refresh token", as.Reuses(), as.RefreshAttempts())
	}
	if got := f.stored("openai:codex"); got.Refresh != second.Refresh || got.AccountID != "acct-1" {
		t.Fatal("the profile does not hold the file's new lineage")
	}

	// Without write-back OpenSoul never refreshes the CLI's login, even
	// when it is due; with it, it refreshes once and writes the file.
	exp := f.stored("openai:codex").Expires
	if exp == 0 {
		t.Fatal("no expiry read from the access token")
	}
	f.clock.Advance(time.UnixMilli(exp).Sub(f.clock.Now()) - time.Minute)
	f.chatIn("")
	if as.RefreshAttempts() != 1 {
		t.Fatal("OpenSoul refreshed a login it may only read")
	}
	f.profiles("main", map[string]store.Credential{"openai:codex": func() store.Credential {
		c := f.stored("openai:codex")
		c.External.WriteBack = true
		return c
	}()}, nil)
	waitFor(t, "the gateway to see write-back", func() bool {
		snap, err := f.gw.Snapshot("main")
		return err == nil && snap.Profiles["openai:codex"].External.WriteBack
	})
	resp, body = f.chatIn("")
	if resp.StatusCode != 200 {
		t.Fatalf("write-back refresh: %d %s", resp.StatusCode, body)
	}
	fromFile, err := keep.ReadExternal(keep.SourceCodex, path)
	if err != nil {
		t.Fatal(err)
	}
	if as.RefreshAttempts() != 2 || fromFile.Refresh != f.stored("openai:codex").Refresh || fromFile.Refresh == second.Refresh || as.Reuses() != 0 {
		t.Fatalf("after a write-back refresh: attempts %d, file==profile %v, file rotated %v, reuses %d\n%s", as.RefreshAttempts(), fromFile.Refresh == f.stored("openai:codex").Refresh, fromFile.Refresh != second.Refresh, as.Reuses(), f.logs.String())
	}
}
