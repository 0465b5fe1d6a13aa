package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// TestNoSecretsInOutput drives every path that produces output — success,
// streaming, each failover reason, exhaustion, auth and body errors,
// metrics — and scans logs, response headers and bodies, metrics and the
// state files the gateway writes for every fixture secret.
func TestNoSecretsInOutput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withEnv(gateway.Env{"OPENAI_API_KEY": {Name: "OPENAI_API_KEY", Value: envKey, Source: "process"}}),
		withConfig(func(c *gateway.Config) { c.Fallbacks = []string{"anthropic/claude-haiku-5"} }))
	f.profiles("main", map[string]store.Credential{
		"anthropic:a":   anthropicKey(keyA),
		"anthropic:b":   anthropicKey(keyB),
		"anthropic:sub": {Type: store.TypeToken, Provider: "anthropic", Token: tokenC},
		"openai:a":      {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey},
	}, nil)
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited, header: map[string]string{"retry-after": "5"}})
	f.anthropic.set(keyB, answer{status: 401, body: invalidKey})
	f.anthropic.set(tokenC, answer{status: 400, body: claudeCodeOnly})
	f.openai.set(openaiKey, answer{status: 402, body: `{"error":{"message":"insufficient_quota"}}`})
	f.openai.set(envKey, answer{})

	var out strings.Builder
	record := func(resp *http.Response, body string) {
		for k, v := range resp.Header {
			fmt.Fprintf(&out, "%s: %s\n", k, strings.Join(v, ","))
		}
		out.WriteString(body)
	}
	record(f.messages("claude-sonnet-5", nil))
	record(f.messages("claude-sonnet-5", map[string]string{"x-opensoul-session": "s"}))
	record(f.do("POST", "/anthropic/v1/messages", `{"model":"claude-sonnet-5","stream":true}`, map[string]string{"x-api-key": gatewayToken}))
	record(f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-5","stream":true}`, map[string]string{"Authorization": "Bearer " + gatewayToken}))
	record(f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-5"}`, map[string]string{"Authorization": "Bearer " + workToken, "x-opensoul-agent": "main"}))
	record(f.do("POST", "/openai/v1/chat/completions", `{"model":"gpt-5"}`, map[string]string{"Authorization": "Bearer " + keyA}))
	record(f.do("GET", "/metrics", "", nil))
	f.Flush()
	for _, agent := range []string{"main", "work"} {
		for _, p := range []string{f.st.StatePath(agent), f.st.SessionsPath(agent)} {
			data, _ := os.ReadFile(p)
			out.Write(data)
		}
	}
	all := out.String() + "\n" + f.logs.String()
	if !strings.Contains(all, "opensoul_profile_failures_total") || !strings.Contains(all, `"msg":"request"`) {
		t.Fatalf("the scan did not see metrics and logs:\n%s", all)
	}
	for _, s := range allSecrets {
		if i := strings.Index(all, s); i >= 0 {
			t.Errorf("secret %q… leaked: …%s…", s[:12], all[max(0, i-200):i])
		}
		// A prefix long enough to identify the secret counts too.
		if strings.Contains(all, s[:len(s)-6]) {
			t.Errorf("a prefix of secret %q… leaked", s[:12])
		}
	}
}

// TestConcurrentRequests runs many callers over two providers, one of
// whose profiles rate-limits, with sessions and live store edits at the
// same time. Run with -race.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	twoKeys(f)
	f.profiles("main", map[string]store.Credential{"openai:a": {Type: store.TypeAPIKey, Provider: "openai", Key: openaiKey}}, nil)
	f.anthropic.set(keyA, answer{status: 429, body: rateLimited})
	f.anthropic.set(keyB, answer{})
	f.openai.set(openaiKey, answer{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 16 {
		wg.Go(func() {
			for i := range 15 {
				path, body, key := "/anthropic/v1/messages", `{"model":"claude-sonnet-5","stream":%v}`, "x-api-key"
				if (g+i)%3 == 0 {
					path, body, key = "/openai/v1/chat/completions", `{"model":"gpt-5","stream":%v}`, "x-opensoul-token"
				}
				req, _ := http.NewRequestWithContext(context.Background(), "POST", f.srv.URL+path, strings.NewReader(fmt.Sprintf(body, i%2 == 0)))
				req.Header.Set(key, gatewayToken)
				req.Header.Set("x-opensoul-session", fmt.Sprintf("s%d", g%4))
				if g%5 == 0 {
					req.Header.Set("x-opensoul-agent", "work")
				}
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: %d", path, resp.StatusCode)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			f.st.UpdateProfiles("main", func(p *store.Profiles) error {
				c := p.Profiles["anthropic:b"]
				c.Label = fmt.Sprint(i)
				p.Profiles["anthropic:b"] = c
				return nil
			})
			f.Flush()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f.Flush()
	st, _ := f.st.LoadState("main")
	if u := st.UsageStats["anthropic:a"]; u == nil || u.CooldownUntil == 0 {
		t.Errorf("anthropic:a not cooling: %+v", u)
	}
}

// TestDependencyDirection guards DESIGN §1: gateway never imports cli,
// koanf or ff.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/opensoul/opensoul/gateway").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/opensoul/opensoul/cli" || strings.Contains(dep, "knadh/koanf") || strings.Contains(dep, "peterbourgon/ff") {
			t.Errorf("gateway depends on %s", dep)
		}
	}
}
