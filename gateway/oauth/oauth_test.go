package oauth_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// checkLogin checks what every login must produce from the test server.
func checkLogin(t *testing.T, tok oauth.Token) {
	t.Helper()
	if tok.Access == "" || tok.Refresh == "" {
		t.Fatalf("login gave access %v, refresh %v; want both", tok.Access != "", tok.Refresh != "")
	}
	if tok.Email != oauthtest.Email {
		t.Errorf("email = %q, want %q (from the id_token)", tok.Email, oauthtest.Email)
	}
	if tok.AccountID != "id1" {
		t.Errorf("account id = %q, want the id_token's sub id1", tok.AccountID)
	}
	if left := time.Until(tok.Expires); left <= 0 || left > time.Hour {
		t.Errorf("expires in %v, want the server's few minutes", left)
	}
}

// The browser step is driven over HTTP: the test's "browser" opens the
// authorize URL, signs in on the server's form and follows the redirect
// to the CLI's loopback listener.
func TestLoginPKCELoopback(t *testing.T) {
	t.Parallel()
	srv := oauthtest.New(t)
	var out strings.Builder
	var sawChallenge bool
	browserErr := make(chan error, 1)
	tok, err := srv.Client.Login(ctx(t), oauth.LoginOptions{
		Out: &out,
		Open: func(u string) error {
			sawChallenge = strings.Contains(u, "code_challenge_method=S256") && strings.Contains(u, "code_challenge=")
			go func() {
				loc, err := srv.Approve(u)
				if err == nil {
					var resp *http.Response
					resp, err = http.Get(loc)
					if err == nil {
						resp.Body.Close()
					}
				}
				browserErr <- err
			}()
			return nil
		},
	})
	if err != nil {
		t.Fatalf("login: %v\n%s", err, out.String())
	}
	if err := <-browserErr; err != nil {
		t.Fatal(err)
	}
	if !sawChallenge {
		t.Error("the authorize URL carries no S256 PKCE challenge")
	}
	checkLogin(t, tok)
	if strings.Contains(out.String(), tok.Access) || strings.Contains(out.String(), tok.Refresh) {
		t.Error("the login printed a token")
	}
}

// Without a display the user pastes the address the browser ended on.
func TestLoginPastedRedirect(t *testing.T) {
	t.Parallel()
	srv := oauthtest.New(t)
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		// Read the printed URL like a user would, approve it, paste back.
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, srv.URL+"/auth?") {
				go func() { // keep reading the output while pasting
					loc, err := srv.Approve(line)
					if err != nil {
						pw.CloseWithError(err)
						return
					}
					io.WriteString(pw, loc+"\n")
				}()
			}
		}
	}()
	tok, err := srv.Client.Login(ctx(t), oauth.LoginOptions{Out: outW, Paste: true, In: pr})
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkLogin(t, tok)
}

func TestLoginPastedRejectsForeignState(t *testing.T) {
	t.Parallel()
	srv := oauthtest.New(t)
	in := strings.NewReader("http://localhost:1455/auth/callback?code=abc&state=not-ours\n")
	_, err := srv.Client.Login(ctx(t), oauth.LoginOptions{Paste: true, In: in})
	if err == nil || !strings.Contains(err.Error(), "state does not match") {
		t.Fatalf("err = %v, want a state mismatch", err)
	}
	_, err = srv.Client.Login(ctx(t), oauth.LoginOptions{Paste: true, In: strings.NewReader("hello\n")})
	if err == nil || !strings.Contains(err.Error(), "code=") {
		t.Fatalf("err = %v, want a hint to paste the whole address", err)
	}
}

// RFC 8628: the CLI prints a code, the user approves it elsewhere.
func TestLoginDevice(t *testing.T) {
	t.Parallel()
	srv := oauthtest.New(t)
	outR, outW := io.Pipe()
	approved := make(chan error, 1)
	go func() {
		re := regexp.MustCompile(`enter the code\s+(\S+)`)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				go func() { approved <- srv.ApproveDevice(m[1]) }()
			}
		}
	}()
	tok, err := srv.Client.Login(ctx(t), oauth.LoginOptions{Out: outW, Device: true})
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	checkLogin(t, tok)
}

func login(t *testing.T, srv *oauthtest.Server) oauth.Token { return srv.Login(t) }

// Rotation: each refresh returns a new refresh token and spends the old;
// presenting the old one again is reuse, which also kills the new one.
func TestRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	srv := oauthtest.New(t)
	first := login(t, srv)
	second, err := srv.Client.Refresh(ctx(t), nil, first.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if second.Refresh == first.Refresh || second.Access == first.Access {
		t.Fatal("the refresh did not rotate the tokens")
	}
	if second.Email != oauthtest.Email {
		t.Errorf("email after refresh = %q", second.Email)
	}
	_, err = srv.Client.Refresh(ctx(t), nil, first.Refresh)
	var oe *oauth.Error
	if !errors.As(err, &oe) || !oe.Dead() || oe.Code != "invalid_grant" {
		t.Fatalf("reusing a spent refresh token: err = %v, want a dead invalid_grant", err)
	}
	if srv.Reuses() != 1 {
		t.Fatalf("server saw %d reuses, want 1", srv.Reuses())
	}
	// Reuse detection revoked the lineage: the newest token is dead too.
	if _, err := srv.Client.Refresh(ctx(t), nil, second.Refresh); err == nil {
		t.Fatal("the lineage survived a reuse")
	}
	if strings.Contains(err.Error(), first.Refresh) {
		t.Fatal("the error holds the refresh token")
	}
}

func TestRefreshRevoked(t *testing.T) {
	t.Parallel()
	srv := oauthtest.New(t)
	tok := login(t, srv)
	srv.Revoke(tok.Refresh)
	_, err := srv.Client.Refresh(ctx(t), nil, tok.Refresh)
	var oe *oauth.Error
	if !errors.As(err, &oe) || !oe.Dead() {
		t.Fatalf("err = %v, want a dead refresh token", err)
	}
}

// A token endpoint that cannot be reached is transient, not dead.
func TestRefreshUnreachableIsTransient(t *testing.T) {
	c := oauth.Client{ClientID: "x", TokenURL: "http://127.0.0.1:1/token"}
	_, err := c.Refresh(ctx(t), nil, "r")
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Dead() {
		t.Fatalf("err = %v, want a transient *oauth.Error", err)
	}
}

func TestMergeOverridesSetFields(t *testing.T) {
	p := oauth.Client{ClientID: "theirs", TokenURL: "https://t.example/token", RedirectPort: 1455, Scopes: []string{"x", "y"}}
	m := p.Merge(oauth.Client{ClientID: "mine", Scopes: []string{"a"}})
	if m.ClientID != "mine" || len(m.Scopes) != 1 || m.TokenURL != p.TokenURL || m.RedirectPort != 1455 {
		t.Fatalf("merge = %+v", m)
	}
}
