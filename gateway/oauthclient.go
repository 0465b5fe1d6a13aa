package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/wasm"
)

// moduleOAuth is the OAuth client provider's module declares, loading the
// module if needed; false when it declares none (or cannot be read, which
// is logged once per declaration).
func (s *Server) moduleOAuth(ctx context.Context, provider string) (oauth.Client, bool) {
	d, ok := s.modules.(keep.Declarer)
	if !ok || d == nil {
		return oauth.Client{}, false
	}
	return s.declared.Client(ctx, d, provider, s.log)
}

// oauthClient is provider's OAuth client: what its module declares, with
// the fields of providers.<p>.oauth in config laid over it (Config.OAuth).
func (s *Server) oauthClient(ctx context.Context, provider string) (oauth.Client, bool) {
	c, fromModule := s.moduleOAuth(ctx, provider)
	o, fromConfig := s.cfg.Load().OAuth[provider]
	if fromConfig {
		c = c.Merge(o)
	}
	return c, fromModule || fromConfig
}

// loginUpstream sends a request made with an OAuth login where its
// provider wants it: the base URL of providers.<p>.oauth in config, else
// the one the module's headers answer gives for this credential (a
// ChatGPT-plan login goes to the ChatGPT backend), else the one its
// module's oauth declaration names; and adds the client's headers, with
// {accountId} replaced by the login's account id, recording what they
// replace in undo (nil: nothing recorded; see attemptHeader).
func (s *Server) loginUpstream(ctx context.Context, req *http.Request, rs *reqState, c store.Credential, h wasm.HeadersResult, undo *headerUndo) {
	if c.Type != store.TypeOAuth {
		return
	}
	declared, _ := s.moduleOAuth(ctx, rs.provider)
	cfg := rs.rc.OAuth[rs.provider]
	oc := declared.Merge(cfg)
	for name, v := range oc.Headers {
		if strings.Contains(v, "{accountId}") {
			if c.AccountID == "" {
				continue
			}
			v = strings.ReplaceAll(v, "{accountId}", c.AccountID)
		}
		undo.set(req.Header, name, v)
	}
	base, strip := loginBase(declared, cfg, h)
	if base == "" {
		return
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Host == "" {
		return
	}
	rest := strings.TrimPrefix(rs.rest, strip)
	u.RawPath = u.EscapedPath() + rest
	if p, err := url.PathUnescape(u.RawPath); err == nil {
		u.Path = p
	}
	u.RawQuery = req.URL.RawQuery
	req.URL = u
	req.Host = ""
}

// loginBase is where a login's requests go instead of the provider's base
// URL ("" for there), and the path prefix to strip first: config's
// providers.<p>.oauth.baseUrl, else the module's answer for this
// credential, else its oauth declaration's.
func loginBase(declared, cfg oauth.Client, h wasm.HeadersResult) (base, strip string) {
	switch {
	case cfg.BaseURL != "":
		return cfg.BaseURL, cfg.StripPrefix
	case h.BaseURL != "":
		return h.BaseURL, h.StripPrefix
	}
	return declared.BaseURL, declared.StripPrefix
}
