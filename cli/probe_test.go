package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
	"github.com/opensoul/opensoul/gateway/store"
)

// Probe credentials: each makes the upstream answer one way.
const (
	probeAntOK    = "sk-ant-api03-PROBEOK-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	probeAntBad   = "sk-ant-api03-PROBEBAD-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	probeAntBusy  = "sk-ant-api03-PROBEBUSY-ccccccccccccccccccccccccccccccccccccccc"
	probeAntSlow  = "sk-ant-api03-PROBESLOW-ddddddddddddddddddddddddddddddddddddddd"
	probeOAIOK    = "sk-proj-PROBEOK-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	probeOAIBad   = "sk-proj-PROBEBAD-ffffffffffffffffffffffffffffffffffffffffff"
	probeOAIBusy  = "sk-proj-PROBEBUSY-gggggggggggggggggggggggggggggggggggggggg"
	probeModelAnt = "claude-sonnet-5"
	probeModelOAI = "gpt-5"
)

// probeUpstream speaks one provider's wire format: it checks the request
// is the probe the provider's API expects and answers by credential.
type probeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	bad    []string // what was wrong with a request
}

// newProbeUpstream serves what answer says, after wrongIn checks the
// request (path, headers, decoded body) and notes what was wrong.
func newProbeUpstream(t *testing.T, path string, wrongIn func(r *http.Request, b map[string]any) string, answer http.HandlerFunc) *probeUpstream {
	u := &probeUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		json.NewDecoder(r.Body).Decode(&b)
		wrong := wrongIn(r, b)
		if r.Method != http.MethodPost || r.URL.Path != path {
			wrong = "request " + r.Method + " " + r.URL.Path
		}
		u.mu.Lock()
		u.bodies = append(u.bodies, b)
		if wrong != "" {
			u.bad = append(u.bad, wrong)
		}
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		answer(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func anthropicProbeUpstream(t *testing.T) *probeUpstream {
	return newProbeUpstream(t, "/v1/messages", func(r *http.Request, b map[string]any) string {
		switch {
		case r.Header.Get("anthropic-version") == "":
			return "no anthropic-version"
		case b["max_tokens"] != float64(1) || b["model"] != probeModelAnt:
			return "body not the smallest request for the model in use"
		}
		return ""
	}, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("x-api-key") {
		case probeAntOK:
			io.WriteString(w, `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"max_tokens","usage":{"input_tokens":8,"output_tokens":1}}`)
		case probeAntBusy:
			w.Header().Set("retry-after", "30")
			w.WriteHeader(429)
			io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`)
		case probeAntSlow:
			<-r.Context().Done() // answers only after the probe gave up
		default: // echoes the key, as a careless upstream might
			w.WriteHeader(401)
			io.WriteString(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key `+r.Header.Get("x-api-key")+`"}}`)
		}
	})
}

func openaiProbeUpstream(t *testing.T) *probeUpstream {
	return newProbeUpstream(t, "/v1/chat/completions", func(r *http.Request, b map[string]any) string {
		if b["max_completion_tokens"] != float64(1) || b["model"] != probeModelOAI {
			return "body not the smallest request for the model in use"
		}
		return ""
	}, func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") {
		case probeOAIOK:
			io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-5","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}}`)
		case probeOAIBusy:
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`)
		default:
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+r.Header.Get("Authorization")+`.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
		}
	})
}

func probeEnv(t *testing.T) (*env, *probeUpstream, *probeUpstream) {
	ant, oai := anthropicProbeUpstream(t), openaiProbeUpstream(t)
	e := newEnv(t)
	e.writeFile("opensoul.yaml", `agents: {defaults: {model: {primary: anthropic/`+probeModelAnt+`, fallbacks: [openai/`+probeModelOAI+`]}}}
providers:
  anthropic: {baseUrl: `+ant.URL+`}
  openai: {baseUrl: `+oai.URL+`}
`)
	err := store.New(e.state).UpdateProfiles("main", func(p *store.Profiles) error {
		for id, key := range map[string]string{
			"anthropic:ok": probeAntOK, "anthropic:bad": probeAntBad, "anthropic:busy": probeAntBusy, "anthropic:slow": probeAntSlow,
			"openai:ok": probeOAIOK, "openai:bad": probeOAIBad, "openai:busy": probeOAIBusy,
		} {
			provider, _, _ := strings.Cut(id, ":")
			p.Profiles[id] = store.Credential{Type: store.TypeAPIKey, Provider: provider, Key: key}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, ant, oai
}

type probeJSON struct {
	Probes []struct {
		Profile, Provider, Model, API, URL string
		OK                                 bool
		Status                             int
		LatencyMs                          int64
		Reason, ErrorType, ErrorCode       string
		Message, Error                     string
	}
	Check *struct{ ExitCode int }
}

// One real request per profile, in each provider's wire format, reports
// ok, the provider's error (secrets masked) or a timeout, and changes no
// cooldown.
func TestModelsStatusProbe(t *testing.T) {
	t.Parallel()
	e, ant, oai := probeEnv(t)
	out, errs, code := e.run("", "models", "status", "--probe", "--probe-timeout", "500ms", "--json", "--check")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (--check with failed probes)\n%s\n%s", code, out, errs)
	}
	var rep probeJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]int{}
	for i, p := range rep.Probes {
		got[p.Profile] = i
	}
	if len(rep.Probes) != 7 {
		t.Fatalf("%d probes, want 7: %+v", len(rep.Probes), rep.Probes)
	}
	want := []struct {
		id                string
		ok                bool
		status            int
		reason, typ, code string
		msg               string
	}{
		{"anthropic:ok", true, 200, "", "", "", ""},
		{"anthropic:bad", false, 401, "auth", "authentication_error", "", "invalid x-api-key"},
		{"anthropic:busy", false, 429, "rate_limit", "rate_limit_error", "", "per-minute rate limit"},
		{"openai:ok", true, 200, "", "", "", ""},
		{"openai:bad", false, 401, "auth", "invalid_request_error", "invalid_api_key", "Incorrect API key provided"},
		{"openai:busy", false, 429, "billing", "insufficient_quota", "insufficient_quota", "exceeded your current quota"},
	}
	for _, w := range want {
		p := rep.Probes[got[w.id]]
		if p.Profile != w.id || p.OK != w.ok || p.Status != w.status || p.Reason != w.reason || p.ErrorType != w.typ || p.ErrorCode != w.code || !strings.Contains(p.Message, w.msg) || p.Error != "" {
			t.Errorf("%s: %+v", w.id, p)
		}
	}
	slow := rep.Probes[got["anthropic:slow"]]
	if slow.OK || !strings.Contains(slow.Error, "no answer within 500ms") {
		t.Errorf("anthropic:slow: %+v", slow)
	}
	if p := rep.Probes[got["anthropic:ok"]]; p.API != "anthropic-messages" || p.URL != ant.URL+"/v1/messages" || p.Model != probeModelAnt {
		t.Errorf("anthropic:ok went %s to %s for %s", p.API, p.URL, p.Model)
	}
	for _, u := range []*probeUpstream{ant, oai} {
		u.mu.Lock()
		if len(u.bad) > 0 {
			t.Errorf("upstream saw a wrong probe: %v", u.bad)
		}
		u.mu.Unlock()
	}
	for _, s := range []string{probeAntBad, probeOAIBad, probeAntBad[len(probeAntBad)-12:], probeOAIBad[len(probeOAIBad)-12:]} {
		if strings.Contains(out+errs, s) {
			t.Fatalf("a probed secret reached the output:\n%s\n%s", out, errs)
		}
	}
	if !strings.Contains(errs, "probing 7 profiles") || strings.Count(errs, "/7] ") != 7 {
		t.Errorf("no progress on stderr:\n%s", errs)
	}
	st, err := store.New(e.state).LoadState("main")
	if err != nil {
		t.Fatal(err)
	}
	for id, u := range st.UsageStats {
		if u.CooldownUntil != 0 || u.DisabledUntil != 0 || u.LastUsed != 0 {
			t.Errorf("the probe changed %s's state: %+v", id, u)
		}
	}

	// --provider narrows; the text form shows each result.
	out, errs, code = e.run("", "models", "status", "--probe", "--provider", "openai")
	_, probes, _ := strings.Cut(out, "Probes (one real request each):")
	if code != 0 || !strings.Contains(probes, "openai:ok") ||
		!strings.Contains(probes, "401 auth (invalid_request_error/invalid_api_key)") || strings.Contains(probes, "anthropic:") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
	if _, errs, code := e.run("", "models", "status", "--probe", "--provider", "google"); code != 2 || !strings.Contains(errs, "no profile of provider google") {
		t.Errorf("--provider without profiles: exit %d\n%s", code, errs)
	}
	if _, _, code := e.run("", "models", "status", "--provider", "openai"); code != 2 {
		t.Errorf("--provider without --probe: exit %d, want a usage error", code)
	}
}

// A login is probed as the gateway uses it: refreshed first when due
// (through the refresh-once path, against a real authorization server),
// and refreshed once more and retried when the upstream answers 401.
func TestModelsStatusProbeRefreshesALogin(t *testing.T) {
	t.Parallel()
	as := oauthtest.New(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !as.Valid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"message":"token expired","type":"invalid_request_error","code":"token_expired"}}`)
			return
		}
		io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"length"}]}`)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t)
	e.writeFile("opensoul.yaml", `agents: {defaults: {model: {primary: acme/m1}}}
providers:
  acme:
    baseUrl: `+up.URL+`
    oauth: {tokenUrl: `+as.Client.TokenURL+`, clientId: `+as.Client.ClientID+`}
`)
	due, revoked := as.Login(t), as.Login(t)
	if err := as.RevokeAccess(revoked.Access); err != nil {
		t.Fatal(err)
	}
	err := store.New(e.state).UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["acme:due"] = store.Credential{Type: store.TypeOAuth, Provider: "acme", Access: due.Access, Refresh: due.Refresh,
			Expires: time.Now().Add(time.Minute).UnixMilli()} // within the 5 min refresh skew
		p.Profiles["acme:revoked"] = store.Credential{Type: store.TypeOAuth, Provider: "acme", Access: revoked.Access, Refresh: revoked.Refresh,
			Expires: time.Now().Add(time.Hour).UnixMilli()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := e.run("", "models", "status", "--probe", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var raw struct {
		Probes []struct {
			Profile       string
			OK, Refreshed bool
		}
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Probes) != 2 {
		t.Fatalf("probes: %+v", raw.Probes)
	}
	for _, p := range raw.Probes {
		if !p.OK || !p.Refreshed {
			t.Errorf("%s: ok=%v refreshed=%v, want a refreshed login that answered\n%s", p.Profile, p.OK, p.Refreshed, out)
		}
	}
	if as.RefreshGrants() != 2 || as.Reuses() != 0 {
		t.Errorf("refresh grants %d (want 2, one per login), reuses %d", as.RefreshGrants(), as.Reuses())
	}
	for _, id := range []string{"acme:due", "acme:revoked"} {
		c := e.login(id)
		if c.Access == due.Access || c.Access == revoked.Access || !as.Valid(c.Access) {
			t.Errorf("%s: the refreshed token was not stored", id)
		}
		if strings.Contains(out+errs, c.Access) || strings.Contains(out+errs, c.Refresh) {
			t.Fatal("a token reached the output")
		}
	}
}
