package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/oauth/oauthtest"
	"github.com/opensoul/opensoul/gateway/store"
)

// A ChatGPT-plan login is probed where the gateway sends it: the openai
// module's per-credential answer moves it to the ChatGPT backend (a test
// upstream here) with its account id, speaking the Responses API.
func TestProbeALoginGoesWhereTheModuleSays(t *testing.T) {
	as := oauthtest.New(t)
	up := newOAuthUpstream(t, as)
	mods := &backendAt{Registry: providerModules(t), real: "https://chatgpt.com/backend-api/codex", test: up.URL + "/backend-api/codex"}
	st := store.New(t.TempDir())
	p, err := gateway.NewProber(gateway.ProberOptions{Store: st, Modules: mods, Config: gateway.Config{
		Providers: map[string]gateway.Upstream{"openai": {BaseURL: "http://127.0.0.1:9"}}, // API keys only
		OAuth:     map[string]oauth.Client{"openai": {TokenURL: as.Client.TokenURL, ClientID: as.Client.ClientID}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tok := as.Login(t)
	c := loginCred(tok, time.Now().Add(time.Hour))
	res := p.Probe(context.Background(), gateway.ProbeRequest{Agent: "main", Profile: "openai:me", Cred: c, Model: "gpt-5-codex"})
	if !res.OK || res.API != "openai-responses" || res.URL != up.URL+"/backend-api/codex/responses" {
		t.Fatalf("probe = %+v", res)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.hdr) != 1 || up.hdr[0].Get("chatgpt-account-id") != tok.AccountID || up.paths[0] != "/backend-api/codex/responses" {
		t.Fatalf("upstream saw %d requests, paths %v", len(up.hdr), up.paths)
	}
}
