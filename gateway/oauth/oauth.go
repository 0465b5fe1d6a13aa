// Package oauth signs a user in to a model provider with OAuth 2.0 and
// refreshes the login: the authorization code grant with PKCE (S256) and a
// loopback redirect, the same grant with the redirect URL pasted back by
// hand (no display, SSH), and the device authorization grant (RFC 8628).
//
// The wire protocol is golang.org/x/oauth2's: it builds the authorize URL,
// makes the PKCE verifier and challenge, exchanges codes, polls the device
// endpoint and reads the token endpoint's errors. This package adds what a
// CLI login needs around it: the loopback listener, the pasted redirect,
// reading the account id and email out of the token answer, and errors that
// say whether a refresh token is dead or the failure was transient.
//
// A provider's OAuth client is data (Client), not code: a provider
// module's info answer declares it (the built-in openai module declares
// OpenAI's Codex sign-in; wasm/ABI.md), and providers.<p>.oauth in config
// overrides its fields or supplies one for any provider.
package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Client is one provider's OAuth client registration and how to read its
// token answers. Field names match providers.<p>.oauth in config and the
// oauth object of a module's info answer (wasm/ABI.md).
type Client struct {
	AuthURL   string   `json:"authUrl,omitempty" koanf:"authUrl"`
	TokenURL  string   `json:"tokenUrl,omitempty" koanf:"tokenUrl"`
	DeviceURL string   `json:"deviceUrl,omitempty" koanf:"deviceUrl"`
	ClientID  string   `json:"clientId,omitempty" koanf:"clientId"`
	Scopes    []string `json:"scopes,omitempty" koanf:"scopes"`
	// RedirectPort is the loopback port the client is registered with;
	// 0 means any free port. RedirectPath defaults to /auth/callback.
	RedirectPort int    `json:"redirectPort,omitempty" koanf:"redirectPort"`
	RedirectPath string `json:"redirectPath,omitempty" koanf:"redirectPath"`
	// Params are extra authorize-URL parameters the provider wants.
	Params map[string]string `json:"params,omitempty" koanf:"params"`
	// AccountIDClaim and EmailClaim are paths into the token answer: a
	// top-level field of the JSON answer, else a claim of the id_token,
	// else a claim of the access token when it is a JWT. Each element is
	// one key, so claim names with dots or slashes work.
	AccountIDClaim []string `json:"accountIdClaim,omitempty" koanf:"accountIdClaim"`
	EmailClaim     []string `json:"emailClaim,omitempty" koanf:"emailClaim"`
	// BaseURL, when set, is where requests made with this login go instead
	// of the provider's base URL; Headers are added to them, with
	// {accountId} replaced by the login's account id.
	// StripPrefix is removed from the request path before it is joined
	// to BaseURL ("/v1" when the login's backend has no version prefix).
	BaseURL     string            `json:"baseUrl,omitempty" koanf:"baseUrl"`
	StripPrefix string            `json:"stripPrefix,omitempty" koanf:"stripPrefix"`
	Headers     map[string]string `json:"headers,omitempty" koanf:"headers"`
	// Source says where these values come from (documentation only).
	Source string `json:"source,omitempty" koanf:"source"`
}

// IsZero reports whether no field is set.
func (c Client) IsZero() bool {
	return c.AuthURL == "" && c.TokenURL == "" && c.DeviceURL == "" && c.ClientID == "" && c.Scopes == nil &&
		c.RedirectPort == 0 && c.RedirectPath == "" && c.Params == nil && c.AccountIDClaim == nil && c.EmailClaim == nil &&
		c.BaseURL == "" && c.StripPrefix == "" && c.Headers == nil && c.Source == ""
}

// Merge returns c with every field o sets replacing c's.
func (c Client) Merge(o Client) Client {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.AuthURL, o.AuthURL)
	set(&c.TokenURL, o.TokenURL)
	set(&c.DeviceURL, o.DeviceURL)
	set(&c.ClientID, o.ClientID)
	set(&c.RedirectPath, o.RedirectPath)
	set(&c.BaseURL, o.BaseURL)
	set(&c.StripPrefix, o.StripPrefix)
	set(&c.Source, o.Source)
	if o.RedirectPort != 0 {
		c.RedirectPort = o.RedirectPort
	}
	if o.Scopes != nil {
		c.Scopes = o.Scopes
	}
	if o.Params != nil {
		c.Params = o.Params
	}
	if o.AccountIDClaim != nil {
		c.AccountIDClaim = o.AccountIDClaim
	}
	if o.EmailClaim != nil {
		c.EmailClaim = o.EmailClaim
	}
	if o.Headers != nil {
		c.Headers = o.Headers
	}
	return c
}

// Validate names the first missing field needed for a login or refresh.
func (c Client) Validate(device bool) error {
	switch {
	case c.ClientID == "":
		return errors.New("clientId is not set")
	case c.TokenURL == "":
		return errors.New("tokenUrl is not set")
	case device && c.DeviceURL == "":
		return errors.New("this provider offers no device login (deviceUrl is not set); log in without --device")
	case !device && c.AuthURL == "":
		return errors.New("authUrl is not set")
	}
	return nil
}

// Token is the result of a login or a refresh. Expires is zero when the
// provider did not say.
type Token struct {
	Access    string
	Refresh   string
	Expires   time.Time
	Email     string
	AccountID string
}

// config is the x/oauth2 view of c for one redirect URL.
func (c Client) config(redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.ClientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:       c.AuthURL,
			TokenURL:      c.TokenURL,
			DeviceAuthURL: c.DeviceURL,
			AuthStyle:     oauth2.AuthStyleInParams, // public clients: client_id in the form
		},
		RedirectURL: redirect,
		Scopes:      c.Scopes,
	}
}

// Refresh spends refresh once and returns the new token. A refresh token
// the provider no longer accepts gives an *Error with Dead() true; a
// network failure or 5xx is transient and may be retried with the same
// refresh token.
func (c Client) Refresh(ctx context.Context, hc *http.Client, refresh string) (Token, error) {
	if c.ClientID == "" || c.TokenURL == "" {
		return Token{}, &Error{Op: "refresh", Description: "no OAuth client is configured for this provider (clientId and tokenUrl)", dead: true}
	}
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	ts := c.config("").TokenSource(ctx, &oauth2.Token{RefreshToken: refresh, Expiry: time.Unix(1, 0)})
	tok, err := ts.Token()
	if err != nil {
		return Token{}, wrapErr("refresh", err)
	}
	return c.read(tok), nil
}

// read turns an x/oauth2 token into a Token, reading email and account id.
func (c Client) read(tok *oauth2.Token) Token {
	t := Token{Access: tok.AccessToken, Refresh: tok.RefreshToken, Expires: tok.Expiry}
	idClaims := Claims(stringExtra(tok, "id_token"))
	atClaims := Claims(tok.AccessToken)
	look := func(path []string) string {
		if len(path) == 0 {
			return ""
		}
		if len(path) == 1 {
			if s := stringExtra(tok, path[0]); s != "" {
				return s
			}
		}
		if s := claimString(idClaims, path); s != "" {
			return s
		}
		return claimString(atClaims, path)
	}
	t.AccountID = look(c.AccountIDClaim)
	t.Email = look(cmpOrPath(c.EmailClaim, []string{"email"}))
	if t.Expires.IsZero() {
		if exp, ok := atClaims["exp"].(float64); ok && exp > 0 {
			t.Expires = time.Unix(int64(exp), 0)
		}
	}
	return t
}

func cmpOrPath(p, def []string) []string {
	if len(p) == 0 {
		return def
	}
	return p
}

func stringExtra(tok *oauth2.Token, key string) string {
	s, _ := tok.Extra(key).(string)
	return s
}

// Claims decodes a JWT's payload without checking its signature, or nil
// when tok is not a JWT. The claims only label a login (email, account id,
// expiry) that came straight from the token endpoint or the provider CLI's
// own file; nothing is authorized on them.
func Claims(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

func claimString(m map[string]any, path []string) string {
	var cur any = m
	for _, k := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = obj[k]
	}
	s, _ := cur.(string)
	return s
}

// Error is a token endpoint's refusal or a failure to reach it. It never
// holds a token.
type Error struct {
	Op          string // login, refresh, device
	Code        string // the provider's error code (invalid_grant, …), or "" when it was not reached
	Description string
	Status      int // HTTP status, 0 when there was no answer
	dead        bool
	err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("oauth")
	if e.Op != "" {
		b.WriteString(" " + e.Op)
	}
	b.WriteString(": ")
	switch {
	case e.Code != "":
		b.WriteString("the provider answered " + e.Code)
		if e.Description != "" {
			b.WriteString(" (" + e.Description + ")")
		}
	case e.Status != 0:
		fmt.Fprintf(&b, "the token endpoint answered HTTP %d", e.Status)
	case e.err != nil:
		b.WriteString(e.err.Error())
	default:
		b.WriteString(e.Description)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.err }

// Dead reports whether the refresh token (or the client) is refused for
// good: trying again with the same token cannot work, a new login is needed.
func (e *Error) Dead() bool { return e.dead }

// wrapErr reads x/oauth2's error into an *Error.
func wrapErr(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e := &Error{Op: op, Code: re.ErrorCode, Description: re.ErrorDescription}
		if re.Response != nil {
			e.Status = re.Response.StatusCode
		}
		// RFC 6749 §5.2: these mean the grant or client is refused; a
		// 4xx without a code is read the same way. 5xx and 429 may pass.
		switch re.ErrorCode {
		case "invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope",
			"refresh_token_reused", "refresh_token_expired", "refresh_token_invalidated":
			e.dead = true
		case "":
			e.dead = e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
		}
		return e
	}
	return &Error{Op: op, err: err}
}

// randomState is an unguessable value for the state parameter.
func randomState() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
