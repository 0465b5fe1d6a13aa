package oauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// LoginOptions say how to reach the user.
type LoginOptions struct {
	// Out gets the URL to open or the code to enter (normally stderr).
	// Nothing secret is written to it.
	Out io.Writer
	// Open opens a URL in a browser. Nil, or an error, leaves the user
	// with the printed URL.
	Open func(url string) error
	// Paste prints the URL and reads the redirect URL the browser ended
	// on from In, for a host without a display or a session over SSH.
	Paste bool
	In    io.Reader
	// Device uses the device authorization grant (RFC 8628) instead.
	Device bool
	// HTTPClient talks to the token endpoints (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// DefaultRedirectPath is the loopback callback path when a client has none.
const DefaultRedirectPath = "/auth/callback"

// Login signs the user in and returns the new token. The context bounds
// the whole login, the user's time in the browser included.
func (c Client) Login(ctx context.Context, o LoginOptions) (Token, error) {
	if err := c.Validate(o.Device); err != nil {
		return Token{}, err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, o.HTTPClient)
	}
	if o.Device {
		return c.device(ctx, o)
	}
	if o.Paste {
		return c.pasted(ctx, o)
	}
	return c.loopback(ctx, o)
}

func (c Client) redirectPath() string {
	if c.RedirectPath == "" {
		return DefaultRedirectPath
	}
	return c.RedirectPath
}

func redirectURL(port int, path string) string {
	return "http://localhost:" + strconv.Itoa(port) + path
}

// authURL is the authorize URL with the PKCE challenge, the state and the
// client's extra parameters.
func (c Client) authURL(cfg *oauth2.Config, state, verifier string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for k, v := range c.Params {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return cfg.AuthCodeURL(state, opts...)
}

// exchange trades the code for tokens, proving possession of verifier.
func (c Client) exchange(ctx context.Context, cfg *oauth2.Config, code, verifier string) (Token, error) {
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Token{}, wrapErr("login", err)
	}
	return c.read(tok), nil
}

// loopback listens on the client's registered port (or a free one), sends
// the user to the authorize URL and waits for the browser to come back.
func (c Client) loopback(ctx context.Context, o LoginOptions) (Token, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.RedirectPort))
	if err != nil {
		return Token{}, fmt.Errorf("listen for the login redirect on 127.0.0.1:%d: %w (is another login running? --no-browser pastes the redirect URL instead)", c.RedirectPort, err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := c.config(redirectURL(port, c.redirectPath()))
	state, verifier := randomState(), oauth2.GenerateVerifier()

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	mux := http.NewServeMux()
	mux.HandleFunc(c.redirectPath(), func(w http.ResponseWriter, r *http.Request) {
		code, err := readRedirect(r.URL.Query(), state)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<!doctype html><p>OpenSoul login failed: %s</p>", html.EscapeString(err.Error()))
		} else {
			fmt.Fprint(w, "<!doctype html><p>OpenSoul is signed in. You can close this tab.</p>")
		}
		select {
		case got <- result{code, err}:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	u := c.authURL(cfg, state, verifier)
	opened := o.Open != nil && o.Open(u) == nil
	if opened {
		fmt.Fprintf(o.Out, "Opened your browser to sign in. If it did not open, visit:\n\n  %s\n\n", u)
	} else {
		fmt.Fprintf(o.Out, "Open this URL in a browser on this machine to sign in:\n\n  %s\n\n", u)
	}
	fmt.Fprintf(o.Out, "Waiting for the browser to come back to %s …\n", cfg.RedirectURL)
	select {
	case <-ctx.Done():
		return Token{}, fmt.Errorf("login: no answer from the browser: %w", ctx.Err())
	case r := <-got:
		if r.err != nil {
			return Token{}, r.err
		}
		return c.exchange(ctx, cfg, r.code, verifier)
	}
}

// pasted prints the authorize URL and reads back the address the browser
// ended on. Nothing listens on the redirect port: the browser shows an
// error page whose address holds the code.
func (c Client) pasted(ctx context.Context, o LoginOptions) (Token, error) {
	if o.In == nil {
		return Token{}, errors.New("login: nothing to read the pasted redirect URL from")
	}
	port := c.RedirectPort
	if port == 0 {
		port = 1455 // any loopback port works for a client without a registered one
	}
	cfg := c.config(redirectURL(port, c.redirectPath()))
	state, verifier := randomState(), oauth2.GenerateVerifier()
	fmt.Fprintf(o.Out, "Open this URL in any browser and sign in:\n\n  %s\n\n", c.authURL(cfg, state, verifier))
	fmt.Fprintf(o.Out, "The browser then goes to %s…, which fails to load on that machine; that is expected.\nPaste the whole address from its address bar here and press Enter:\n", cfg.RedirectURL)

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(io.LimitReader(o.In, 64<<10)).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case <-ctx.Done():
		return Token{}, fmt.Errorf("login: no redirect URL pasted: %w", ctx.Err())
	case line = <-lines:
	}
	q, err := pastedQuery(line)
	if err != nil {
		return Token{}, err
	}
	code, err := readRedirect(q, state)
	if err != nil {
		return Token{}, err
	}
	return c.exchange(ctx, cfg, code, verifier)
}

// pastedQuery reads the query of a pasted redirect URL (or of just its
// "?code=…&state=…" part).
func pastedQuery(line string) (url.Values, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, errors.New("login: nothing was pasted; paste the whole address the browser ended on")
	}
	raw := line
	if i := strings.IndexByte(line, '?'); i >= 0 {
		raw = line[i+1:]
	}
	q, err := url.ParseQuery(raw)
	if err != nil || (q.Get("code") == "" && q.Get("error") == "") {
		return nil, errors.New("login: the pasted text has no code= parameter; paste the whole address from the browser's address bar")
	}
	return q, nil
}

// readRedirect checks the state and returns the code, or the provider's
// error.
func readRedirect(q url.Values, state string) (string, error) {
	if e := q.Get("error"); e != "" {
		err := &Error{Op: "login", Code: e, Description: q.Get("error_description")}
		return "", err
	}
	if q.Get("state") != state {
		return "", errors.New("login: the redirect's state does not match this login (an old or foreign URL?); start the login again")
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("login: the redirect has no code")
	}
	return code, nil
}

// device runs the device authorization grant: print the code, poll.
func (c Client) device(ctx context.Context, o LoginOptions) (Token, error) {
	cfg := c.config("")
	var opts []oauth2.AuthCodeOption
	for k, v := range c.Params {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	da, err := cfg.DeviceAuth(ctx, opts...)
	if err != nil {
		return Token{}, wrapErr("device", err)
	}
	fmt.Fprintf(o.Out, "On any device, open\n\n  %s\n\nand enter the code  %s\n\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" && o.Open != nil {
		o.Open(da.VerificationURIComplete)
	}
	fmt.Fprintln(o.Out, "Waiting for you to approve the login …")
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		return Token{}, wrapErr("device", err)
	}
	return c.read(tok), nil
}
