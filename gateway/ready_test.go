package gateway_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// freshModules is a module host and registry of the built-in modules
// with nothing loaded yet (compiled code comes from the tests' cache), so
// a test sees every load and call a gateway makes.
func freshModules(t *testing.T) (*wasm.Host, *wasm.Registry) {
	t.Helper()
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.Options{CacheDir: filepath.Join(os.TempDir(), "opensoul-gateway-test-wazero")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(ctx) })
	reg, errs := wasm.NewRegistry(ctx, host, nil)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	return host, reg
}

// TestReadyMeansWarm: /readyz stays 503 while the warmup compiles the
// provider modules, turns 200 when it is done, and the first request after
// that compiles nothing.
func TestReadyMeansWarm(t *testing.T) {
	t.Parallel()
	host, reg := freshModules(t)
	release := make(chan struct{})
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		o.Modules = reg
		o.Warmup = func(ctx context.Context) {
			<-release
			if errs := reg.Load(ctx, "anthropic"); len(errs) > 0 {
				t.Error(errs[0])
			}
		}
	})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	if resp, body := f.do("GET", "/readyz", "", nil); resp.StatusCode != 503 || body != "starting: compiling provider modules, warming credentials and policies\n" {
		t.Fatalf("readyz during warmup: %d %q", resp.StatusCode, body)
	}
	if host.Loads() != 0 {
		t.Fatalf("%d modules loaded before the warmup ran", host.Loads())
	}
	close(release)
	waitFor(t, "readyz", func() bool {
		resp, _ := f.do("GET", "/readyz", "", nil)
		return resp.StatusCode == 200
	})
	loads := host.Loads()
	if loads == 0 {
		t.Fatal("ready, but the warmup loaded no module")
	}
	if resp, body := f.messages("claude-sonnet-5", nil); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	if got := host.Loads(); got != loads {
		t.Errorf("the first request after readyz loaded %d more modules", got-loads)
	}
}

// TestReadyMeansDecided: /readyz stays 503 until every configured agent
// has been warmed, not only the modules compiled: its profiles checked
// and presented by their module, and the policy evaluated for the models
// in use. The first request after it then asks no module anything and is
// answered from the decision cache.
func TestReadyMeansDecided(t *testing.T) {
	t.Parallel()
	host, reg := freshModules(t)
	release := make(chan struct{})
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		o.Modules = reg
		o.Config.Primary = "anthropic/claude-sonnet-5"
		o.Warmup = func(ctx context.Context) {
			<-release
			if errs := reg.Load(ctx, "anthropic"); len(errs) > 0 {
				t.Error(errs[0])
			}
		}
	})
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.profiles("work", map[string]store.Credential{"anthropic:w": anthropicKey(keyB)}, nil)
	f.anthropic.set(keyA, answer{})
	f.anthropic.set(keyB, answer{})
	if resp, _ := f.do("GET", "/readyz", "", nil); resp.StatusCode != 503 {
		t.Fatalf("readyz during warmup: %d", resp.StatusCode)
	}
	if st := f.engine.Stats(); st.Decisions != 0 || host.Calls() != 0 {
		t.Fatalf("before the warmup: %d decisions, %d module calls", st.Decisions, host.Calls())
	}
	close(release)
	waitFor(t, "readyz", func() bool {
		resp, _ := f.do("GET", "/readyz", "", nil)
		return resp.StatusCode == 200
	})
	st, calls := f.engine.Stats(), host.Calls()
	if st.Evaluations < 2 {
		t.Fatalf("ready after %d policy evaluations; want one per agent at least (main, work)", st.Evaluations)
	}
	for _, r := range f.anthropic.requests() {
		// The preconnect's HEAD / (TestPreconnect) and nothing else.
		if r.secret != "" || r.path != "/" {
			t.Fatalf("the warmup sent a request upstream: %s with a secret: %v", r.path, r.secret != "")
		}
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"msg":"agents warmed","agents":["main","work"],"profiles":3`) {
		t.Errorf("no log line saying what was warmed:\n%s", logs)
	}
	sets := map[string]int{"main": gateway.ScrubSets(f.gw, "main"), "work": gateway.ScrubSets(f.gw, "work")}
	if sets["main"] == 0 || sets["work"] == 0 {
		t.Errorf("ready before the secret sets answers are scrubbed of were built: %v", sets)
	}
	for _, token := range []string{gatewayToken, workToken} {
		if resp, body := f.messages("claude-sonnet-5", map[string]string{"x-api-key": token}); resp.StatusCode != 200 {
			t.Fatalf("first request: %d %s", resp.StatusCode, body)
		}
	}
	if got := host.Calls(); got != calls {
		t.Errorf("the first requests after readyz made %d module calls (checks or headers not warmed)", got-calls)
	}
	if got := f.engine.Stats(); got.Evaluations != st.Evaluations {
		t.Errorf("the first requests after readyz evaluated the policy %d times (decisions not warmed)", got.Evaluations-st.Evaluations)
	}
	for agent, n := range sets {
		if got := gateway.ScrubSets(f.gw, agent); got != n {
			t.Errorf("the first request of %s built a secret set (%d, was %d)", agent, got, n)
		}
	}
}

// TestWarmAfterPolicyReload: Warm (which the CLI's watcher calls after a
// reload) evaluates the policies now in force, so the first request after
// a policy change is answered from the decision cache again.
func TestWarmAfterPolicyReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	engine, err := policy.New(ctx, policy.Options{Dirs: []string{dir}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		o.Selector = engine
		o.Config.Primary = "anthropic/claude-sonnet-5"
	})
	rotatingKeys(f)
	if resp, body := f.messages("claude-sonnet-5", nil); resp.StatusCode != 200 {
		t.Fatalf("before the reload: %d %s", resp.StatusCode, body)
	}
	rule := "package opensoul.rules\n\ndeny contains {\"profile\": \"anthropic:a\", \"reason\": \"kept for the batch jobs\"} if true\n"
	if err := os.WriteFile(filepath.Join(dir, "deny.rego"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := engine.Reload(ctx); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	before := engine.Stats()
	f.gw.Warm(ctx)
	warmed := engine.Stats()
	if warmed.Evaluations == before.Evaluations {
		t.Fatal("Warm evaluated nothing after the policy reload")
	}
	resp, body := f.messages("claude-sonnet-5", nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Opensoul-Profile") != "anthropic:b" {
		t.Fatalf("after the reload: %d %q %s", resp.StatusCode, resp.Header.Get("X-Opensoul-Profile"), body)
	}
	if got := engine.Stats(); got.Evaluations != warmed.Evaluations {
		t.Errorf("the first request after the reload and Warm evaluated the policy %d times", got.Evaluations-warmed.Evaluations)
	}
}
