package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/scrub"
	"github.com/opensoul/opensoul/gateway/store"
)

// Prober sends the smallest real request a provider answers (one output
// token) with one stored credential, presented exactly as the gateway
// presents it: refreshed first when it is a login that is due (the same
// refresh-once path, under the profile's lock), the module's headers, and
// the login's own upstream (a ChatGPT-plan login goes to the ChatGPT
// backend). It records nothing: no cooldown, no last-used, no metrics.
// `opensoul models status --probe` uses it.
type Prober struct {
	s  *Server
	rt http.RoundTripper
}

// ProberOptions are the parts of Options a Prober uses. Transport, when
// set, replaces the upstream transport.
type ProberOptions struct {
	Store           *store.Store
	Config          Config
	Modules         Modules
	Logger          *slog.Logger
	OAuthHTTPClient *http.Client
	Now             func() time.Time
	Transport       http.RoundTripper
}

// NewProber builds a Prober; it starts nothing that needs closing.
func NewProber(o ProberOptions) (*Prober, error) {
	rc, err := prepare(o.Config)
	if err != nil {
		return nil, err
	}
	s := &Server{store: o.Store, modules: o.Modules, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.cfg.Store(rc)
	s.refresh = &keep.Refresher{
		Store: o.Store, HTTPClient: o.OAuthHTTPClient, Now: s.now, Log: s.log,
		Client: func(provider string) (oauth.Client, bool) { return s.oauthClient(context.Background(), provider) },
		SkewOf: func() time.Duration { return rc.RefreshSkew },
	}
	p := &Prober{s: s}
	if o.Transport != nil {
		p.rt = o.Transport
	} else {
		p.rt = newTransport(rc.Config)
	}
	return p, nil
}

// ProbeRequest names the credential to probe: the profile Profile of
// Agent's store, and the model to ask (without the provider).
type ProbeRequest struct {
	Agent, Profile string
	Cred           store.Credential
	Model          string
	// Timeout bounds the probe, a refresh included (30 s when zero).
	Timeout time.Duration
}

// ProbeResult is what one probe found. OK means the provider answered
// 2xx. Otherwise Status, ErrorType, ErrorCode and Message are the
// provider's error (secrets masked) and Reason how the gateway reads it
// (rate_limit, auth, billing…); Error is set when no answer came (a
// timeout, a refused refresh, an unknown provider).
type ProbeResult struct {
	Profile   string `json:"profile"`
	Provider  string `json:"provider"`
	Model     string `json:"model"`
	API       string `json:"api"`
	URL       string `json:"url,omitempty"` // where the probe went, without query
	OK        bool   `json:"ok"`
	Status    int    `json:"status,omitempty"`
	LatencyMs int64  `json:"latencyMs"`
	Reason    string `json:"reason,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
	Message   string `json:"message,omitempty"`
	Error     string `json:"error,omitempty"`
	// Refreshed: the login was refreshed for the probe (it was due, or the
	// provider answered 401 and the retry used the new token).
	Refreshed bool `json:"refreshed,omitempty"`
}

// DefaultProbeTimeout bounds one probe when ProbeRequest.Timeout is zero.
const DefaultProbeTimeout = 30 * time.Second

// maxProbeBody is how much of an answer a probe reads.
const maxProbeBody = 64 << 10

// Probe sends one probe and reports what happened.
func (p *Prober) Probe(ctx context.Context, pr ProbeRequest) ProbeResult {
	s := p.s
	c := pr.Cred
	res := ProbeResult{Profile: pr.Profile, Provider: c.Provider, Model: pr.Model}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(pr.Timeout, DefaultProbeTimeout))
	defer cancel()
	start := time.Now()
	defer func() { res.LatencyMs = time.Since(start).Milliseconds() }()
	rc := s.cfg.Load()
	base, ok := rc.bases[c.Provider]
	if !ok {
		res.Error = fmt.Sprintf("no base URL for provider %s (providers.%s.baseUrl)", c.Provider, c.Provider)
		return res
	}
	ss := p.secrets(rc, c)
	for retried := false; ; retried = true {
		if c.Type == store.TypeOAuth {
			before := c.Access
			fresh, err := s.refresh.Fresh(ctx, pr.Agent, pr.Profile, c, retried)
			if err != nil && !usableDespite(err, fresh, s.now()) {
				res.Error = ss.Mask(err.Error())
				return res
			}
			c = fresh
			res.Refreshed = res.Refreshed || c.Access != before
			ss.Add(c.Access)
			ss.Add(c.Refresh)
		}
		resp, body, err := p.send(ctx, base.String(), &res, c, pr.Model)
		if err != nil {
			res.Error = ss.Mask(upstreamErrText(err))
			if ctx.Err() != nil {
				res.Error = fmt.Sprintf("no answer within %s", cmp.Or(pr.Timeout, DefaultProbeTimeout))
			}
			return res
		}
		res.Status = resp.StatusCode
		if resp.StatusCode == http.StatusUnauthorized && !retried && c.Refreshable() {
			continue // as the gateway does: refresh once and retry
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			res.OK = true
			return res
		}
		res.Reason = s.classify(ctx, c.Provider, resp, body, s.now()).Reason
		res.ErrorType, res.ErrorCode, res.Message = providerError(body)
		res.ErrorType, res.ErrorCode, res.Message = ss.Mask(res.ErrorType), ss.Mask(res.ErrorCode), ss.Mask(res.Message)
		return res
	}
}

// send builds the probe request for c as the gateway would and sends it.
func (p *Prober) send(ctx context.Context, base string, res *ProbeResult, c store.Credential, model string) (*http.Response, []byte, error) {
	s := p.s
	prov := providers.For(c.Provider)
	h, herr := s.headers(ctx, c.Provider, candidate{cred: c})
	if herr != nil {
		return nil, nil, herr // a custom provider's module cannot present it
	}
	declared, _ := s.moduleOAuth(ctx, c.Provider)
	own, _ := loginBase(declared, s.cfg.Load().OAuth[c.Provider], h)
	moved := c.Type == store.TypeOAuth && own != ""
	res.API = probeAPI(prov, moved)
	path, body := probeBody(res.API, model)
	rest := prov.APIPrefix + path
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+rest, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	out.Header.Set("Content-Type", "application/json")
	if res.API == providers.APIAnthropicMessages {
		out.Header.Set("anthropic-version", "2023-06-01") // the Messages API's required version header
	}
	applyHeaders(out.Header, h, nil)
	s.loginUpstream(ctx, out, &reqState{rc: s.cfg.Load(), provider: c.Provider, rest: rest}, c, h, nil)
	u := *out.URL
	u.RawQuery = ""
	res.URL = u.String()
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	return resp, b, nil
}

// probeAPI is the wire API a probe speaks: the provider's first, except
// that a login moved to its own backend (a ChatGPT-plan login, which the
// ChatGPT backend serves with the Responses API only) speaks Responses
// when the provider has it.
func probeAPI(p providers.Provider, moved bool) string {
	if moved && slices.Contains(p.APIs, providers.APIOpenAIResponses) {
		return providers.APIOpenAIResponses
	}
	if len(p.APIs) == 0 {
		return providers.APIOpenAICompletions
	}
	return p.APIs[0]
}

// probeBody is the smallest request of api: one short user turn, at most
// one output token (16 for Responses, its minimum).
func probeBody(api, model string) (path string, body []byte) {
	msgs := []map[string]string{{"role": "user", "content": "hi"}}
	var v any
	switch api {
	case providers.APIAnthropicMessages:
		path, v = "/messages", map[string]any{"model": model, "max_tokens": 1, "messages": msgs}
	case providers.APIOpenAIResponses:
		path, v = "/responses", map[string]any{"model": model, "input": "hi", "max_output_tokens": 16, "store": false}
	default:
		path, v = "/chat/completions", map[string]any{"model": model, "max_completion_tokens": 1, "messages": msgs}
	}
	body, _ = json.Marshal(v)
	return path, body
}

// providerError reads the error of an answer in the providers' shapes:
// {"error":{"type","code","message"}} (OpenAI, Anthropic's inside
// {"type":"error"}), {"error":"text"}, or {"message"}; else the start of
// the body as text.
func providerError(body []byte) (typ, code, msg string) {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil {
		var e struct {
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Status  string          `json:"status"`
			Message string          `json:"message"`
		}
		var text string
		switch {
		case json.Unmarshal(v.Error, &e) == nil:
			code = strings.Trim(string(e.Code), `"`)
			if code == "null" {
				code = ""
			}
			return cmp.Or(e.Type, e.Status), code, short(e.Message)
		case json.Unmarshal(v.Error, &text) == nil:
			return "", "", short(text)
		case v.Message != "":
			return "", "", short(v.Message)
		}
	}
	return "", "", short(strings.TrimSpace(string(body)))
}

func short(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// secrets is what a probe's report must not show: the credential, its
// refresh token, and the gateway's and config's own secrets.
func (p *Prober) secrets(rc *runtimeConfig, c store.Credential) *scrub.Set {
	ss := &scrub.Set{}
	ss.Add(c.Secret())
	ss.Add(c.Refresh)
	for _, up := range rc.Providers {
		ss.Add(up.APIKey)
	}
	ss.Add(rc.Token)
	return ss.Done()
}
