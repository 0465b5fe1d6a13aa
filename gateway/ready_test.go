package gateway_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/wasm"
)

// TestReadyMeansWarm: /readyz stays 503 while the warmup compiles the
// provider modules, turns 200 when it is done, and the first request after
// that compiles nothing.
func TestReadyMeansWarm(t *testing.T) {
	t.Parallel()
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
	release := make(chan struct{})
	f := newFixture(t, func(_ *fixture, o *gateway.Options) {
		o.Modules = reg
		o.WarmModels = []string{"anthropic/claude-sonnet-5"}
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
	if n := len(f.anthropic.requests()); n != 0 {
		t.Fatalf("the warmup sent %d requests upstream", n)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"msg":"ready: agents warmed","agents":["main","work"],"profiles":3`) {
		t.Errorf("no log line saying what was warmed:\n%s", logs)
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
}
