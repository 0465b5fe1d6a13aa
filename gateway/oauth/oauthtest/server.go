// Package oauthtest runs a real OAuth 2.0 / OpenID Connect authorization
// server in-process on loopback for tests: zitadel/oidc's OpenID Provider
// with its example storage (PKCE, refresh-token rotation, the device grant),
// plus refresh-token reuse detection: presenting a refresh token that was
// already spent revokes the whole lineage, as real providers do.
//
// It is imported by tests only; nothing in the opensoul binary links it.
package oauthtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/opensoul/opensoul/gateway/oauth"
)

// ClientID is the public (PKCE, no secret) client the server knows.
const ClientID = "opensoul-test"

// User and Password sign in; Email is what the id_token says.
const (
	Password = "verysecure"
	Email    = "test-user@zitadel.ch"
)

var registerOnce sync.Once

// Server is a running authorization server.
type Server struct {
	URL    string
	Client oauth.Client // an oauth.Client pointing at this server
	User   string

	st  *reuseStorage
	srv *httptest.Server
}

// New starts a server on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	registerOnce.Do(func() {
		storage.RegisterClients(storage.NativeClient(ClientID, "http://localhost/auth/callback"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	users := storage.NewUserStore(issuer)
	st := &reuseStorage{Storage: storage.NewStorage(users), users: users, lineage: map[string]int{}, spent: map[string]int{}, dead: map[int]bool{}}
	router := exampleop.SetupServer(issuer, st, nil, false, op.WithAllowInsecure())
	srv := httptest.NewUnstartedServer(router)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	s := &Server{
		URL:  issuer,
		User: "test-user@127.0.0.1",
		st:   st,
		srv:  srv,
		Client: oauth.Client{
			AuthURL:        issuer + "/auth",
			TokenURL:       issuer + "/oauth/token",
			DeviceURL:      issuer + "/device_authorization",
			ClientID:       ClientID,
			Scopes:         []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeOfflineAccess},
			AccountIDClaim: []string{"sub"},
		},
	}
	return s
}

// RefreshGrants is how many refresh grants the server has answered with new
// tokens; RefreshAttempts counts every refresh grant presented, refused ones
// too; Reuses counts refresh tokens presented after they were spent.
func (s *Server) RefreshGrants() int {
	return s.st.count(func(r *reuseStorage) int { return r.grants })
}
func (s *Server) RefreshAttempts() int {
	return s.st.count(func(r *reuseStorage) int { return r.attempts })
}
func (s *Server) Reuses() int { return s.st.count(func(r *reuseStorage) int { return r.reuses }) }

// Revoke revokes a refresh token, as a user signing out elsewhere would.
func (s *Server) Revoke(refresh string) {
	s.st.Storage.RevokeToken(context.Background(), refresh, "", ClientID)
}

// RevokeAccess revokes an access token at the server's revocation
// endpoint; its refresh token stays valid.
func (s *Server) RevokeAccess(access string) error {
	resp, err := http.PostForm(s.URL+"/revoke", url.Values{"token": {access}, "token_type_hint": {"access_token"}, "client_id": {ClientID}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oauthtest: revoke answered HTTP %d", resp.StatusCode)
	}
	if s.Valid(access) {
		return errors.New("oauthtest: the access token survived its revocation")
	}
	return nil
}

// Approve plays the user's browser: it opens authURL, signs in on the
// server's login page and returns the address the server finally sends
// the browser to (the client's redirect URL with code and state), without
// visiting it.
func (s *Server) Approve(authURL string) (string, error) {
	jar := &cookies{}
	hc := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), s.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := hc.Get(authURL)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if id == "" {
		return "", fmt.Errorf("oauthtest: the authorize URL did not lead to the login page (HTTP %d at %s)", resp.StatusCode, resp.Request.URL)
	}
	resp, err = hc.PostForm(s.URL+"/login/username", url.Values{"id": {id}, "username": {s.User}, "password": {Password}})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return "", fmt.Errorf("oauthtest: sign-in did not redirect back (HTTP %d)", resp.StatusCode)
	}
	return loc, nil
}

// ApproveDevice signs in on the device page and approves userCode.
func (s *Server) ApproveDevice(userCode string) error {
	jar := &cookies{}
	hc := &http.Client{Jar: jar}
	resp, err := hc.PostForm(s.URL+"/device/login", url.Values{"user_code": {userCode}, "username": {s.User}, "password": {Password}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	resp, err = hc.PostForm(s.URL+"/device/confirm", url.Values{"action": {"allowed"}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	st, err := s.st.GetDeviceAuthorizationByUserCode(context.Background(), userCode)
	if err != nil {
		return err
	}
	if !st.Done {
		return errors.New("oauthtest: the device login was not approved")
	}
	return nil
}

// reuseStorage is the example storage with refresh-token reuse detection
// and counters.
type reuseStorage struct {
	*storage.Storage
	users    storage.UserStore
	mu       sync.Mutex
	next     int
	lineage  map[string]int // live or spent refresh token → lineage
	spent    map[string]int
	dead     map[int]bool
	grants   int
	attempts int
	reuses   int
}

func (r *reuseStorage) count(f func(*reuseStorage) int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return f(r)
}

// TokenRequestByRefreshToken refuses a spent token and kills its lineage.
func (r *reuseStorage) TokenRequestByRefreshToken(ctx context.Context, refresh string) (op.RefreshTokenRequest, error) {
	r.mu.Lock()
	r.attempts++
	if l, ok := r.spent[refresh]; ok {
		r.reuses++
		r.dead[l] = true
		r.mu.Unlock()
		return nil, errors.New("refresh_token_reused")
	}
	if l, ok := r.lineage[refresh]; ok && r.dead[l] {
		r.mu.Unlock()
		return nil, errors.New("refresh token lineage revoked after reuse")
	}
	r.mu.Unlock()
	return r.Storage.TokenRequestByRefreshToken(ctx, refresh)
}

// CreateAccessAndRefreshTokens records lineages and spent tokens.
func (r *reuseStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, refresh, exp, err := r.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	if err != nil {
		return id, refresh, exp, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if current == "" {
		r.next++
		r.lineage[refresh] = r.next
	} else {
		l := r.lineage[current]
		r.grants++
		r.spent[current] = l
		delete(r.lineage, current)
		r.lineage[refresh] = l
	}
	return id, refresh, exp, nil
}

// CompleteDeviceAuthorization records the user's id, not the user name
// the example's device page passes, so the id_token can name the user.
func (r *reuseStorage) CompleteDeviceAuthorization(ctx context.Context, userCode, username string) error {
	subject := username
	if u := r.users.GetUserByUsername(username); u != nil {
		subject = u.ID
	}
	return r.Storage.CompleteDeviceAuthorization(ctx, userCode, subject)
}

// GetClientByClientID lets the native test client use the device grant too.
func (r *reuseStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := r.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return deviceToo{c}, nil
}

type deviceToo struct{ op.Client }

// AccessTokenType makes access tokens JWTs (with exp), as OpenAI's are.
func (d deviceToo) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// IDTokenUserinfoClaimsAssertion puts the email in the id_token, where
// logins read it.
func (d deviceToo) IDTokenUserinfoClaimsAssertion() bool { return true }

func (d deviceToo) GrantTypes() []oidc.GrantType {
	return append(d.Client.GrantTypes(), oidc.GrantTypeDeviceCode)
}

// cookies is a minimal cookie jar (net/http/cookiejar would do; this keeps
// the browser's state visible in one place).
type cookies struct {
	mu sync.Mutex
	c  []*http.Cookie
}

func (j *cookies) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.c = append(j.c, cs...)
}

func (j *cookies) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]*http.Cookie(nil), j.c...)
}

// Login signs in as the test user through the browser step and returns
// the token.
func (s *Server) Login(t testing.TB) oauth.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := s.Client.Login(ctx, oauth.LoginOptions{Open: func(u string) error {
		go func() {
			if loc, err := s.Approve(u); err == nil {
				if resp, err := http.Get(loc); err == nil {
					resp.Body.Close()
				}
			}
		}()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Valid asks the server's userinfo endpoint whether access is a live
// access token, as a provider's API checks the bearer it gets. Rotation
// and revocation end an access token.
func (s *Server) Valid(access string) bool {
	req, _ := http.NewRequest("GET", s.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
