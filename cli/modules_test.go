package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/doctor"
	"github.com/opensoul/opensoul/wasm"
)

// headerRecorder is an upstream that records the credential headers of
// each request it gets.
type headerRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func (h *headerRecorder) last() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return http.Header{}
	}
	return h.seen[len(h.seen)-1]
}

func newHeaderRecorder(t *testing.T) *headerRecorder {
	h := &headerRecorder{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, r.Header.Clone())
		h.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, `{"id":"1","object":"chat.completion","choices":[]}`)
	}))
	t.Cleanup(h.Close)
	return h
}

// installModule copies a fixture module to path the way a user would
// (write elsewhere, then rename over the old file).
func installModule(t *testing.T, fixture, path string) {
	t.Helper()
	b, err := os.ReadFile(moduleFixture(t, fixture))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// A module configured as ~/... (as the example config does) loads, and a
// running gateway picks up a changed module file without a restart; a
// broken file is refused, named in the log, and the module in force kept.
func TestGatewayReloadsChangedModule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := newHeaderRecorder(t)
	path := filepath.Join(e.vars["HOME"], "mods", "acme.wasm")
	installModule(t, "acme.wasm", path)
	e.writeFile(".env", envGatewayToken+"="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", "providers:\n  acme:\n    baseUrl: "+up.URL+"\n    apiKey: acme-123\n    module: ~/mods/acme.wasm\n")
	g := startGateway(t, e, "127.0.0.1:0")
	body := `{"model":"m","messages":[]}`
	send := func() http.Header {
		t.Helper()
		if resp, out := g.post(t, "/acme/v1/chat/completions", fixGatewayToken, body); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s\n%s", resp.StatusCode, out, g.stderr.String())
		}
		return up.last()
	}
	if h := send(); h.Get("x-acme-key") != "acme-123" || h.Get("authorization") != "" {
		t.Fatalf("the ~ module did not present the key: %v\n%s", h, g.stderr.String())
	}

	installModule(t, "bad/picky.wasm", path) // declares no headers: the generic Bearer
	waitUntil(t, "the changed module to load", func() bool { return strings.Contains(g.stderr.String(), "provider modules reloaded") })
	if h := send(); h.Get("authorization") != "Bearer acme-123" || h.Get("x-acme-key") != "" {
		t.Errorf("after the change: %v", h)
	}

	installModule(t, "bad/not-wasm.wasm", path)
	waitUntil(t, "the broken module to be refused", func() bool {
		return strings.Contains(g.stderr.String(), "provider module change refused")
	})
	if !strings.Contains(g.stderr.String(), path) {
		t.Errorf("the refusal does not name %s:\n%s", path, g.stderr.String())
	}
	if h := send(); h.Get("authorization") != "Bearer acme-123" {
		t.Errorf("after a broken module: %v, want the module in force", h)
	}
	time.Sleep(3 * gatewayWatchInterval) // refused once, not on every tick
	if n := strings.Count(g.stderr.String(), "provider module change refused"); n != 1 {
		t.Errorf("refusal logged %d times:\n%s", n, g.stderr.String())
	}
	e.assertNoSecrets()
}

// What a gateway's breaker skips shows in providers list and doctor,
// which run in other processes.
func TestSkippedModuleShownInListAndDoctor(t *testing.T) {
	t.Parallel()
	e, _, _ := providersEnv(t)
	loopy := moduleFixture(t, "bad/loop-headers.wasm")
	e.writeFile("opensoul.yaml", "providers:\n  loopy:\n    baseUrl: https://loopy.example\n    module: "+loopy+"\n")
	// The gateway's side, for real: a host whose breaker opens on the
	// looping headers op and writes the state dir's backoff file.
	ctx := context.Background()
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	h, err := wasm.NewHost(ctx, wasm.Options{NoDiskCache: true, CallTimeout: time.Second,
		BackoffFile: filepath.Join(e.state, "module-backoff.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	reg, _ := wasm.NewRegistry(ctx, h, map[string]string{"loopy": loopy})
	for range wasm.DefaultBreakerFailures {
		reg.Headers(ctx, "loopy", wasm.HeadersRequest{Secret: "s"})
	}

	var rows []providerRow
	if err := json.Unmarshal([]byte(e.ok("", "providers", "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	var row providerRow
	for _, r := range rows {
		if r.Name == "loopy" {
			row = r
		}
	}
	if b := row.Backoff; b == nil || b.Module != loopy || b.Failures != wasm.DefaultBreakerFailures || !strings.Contains(b.Error, "deadline") {
		t.Fatalf("providers list --json: loopy %+v", row)
	}
	if !row.OpsDeclared || strings.Join(row.Ops, ",") != "info,check,headers" {
		t.Errorf("loopy's declared ops: %+v", row)
	}
	table := e.ok("", "providers", "list")
	for _, want := range []string{"(skipped by the gateway: requests get 503)", "loopy: module " + loopy + " skipped by the running gateway", "so its requests get 503"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	out, _, _ := e.run("", "doctor", "--json")
	var doc struct{ Checks []doctor.Check }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range doc.Checks {
		if c.Name == "provider module loopy" {
			found = c.Status == "warn" && strings.Contains(c.Detail, "requests get 503") && strings.Contains(c.Fix, loopy)
		}
	}
	if !found {
		t.Errorf("doctor does not warn about the skipped module:\n%s", out)
	}

	// A gateway that stops takes its backoffs with it.
	h.Close(ctx)
	if out := e.ok("", "providers", "list"); strings.Contains(out, "skipped") {
		t.Errorf("a closed host's backoff is still listed:\n%s", out)
	}
}

// gateway.modules.* reach the module host: one deadline failure opens the
// breaker when breakerFailures is 1, for breakerBackoffMs; the defaults
// are the host's own.
func TestModuleLimitsAreConfig(t *testing.T) {
	t.Parallel()
	o := DefaultConfig().Gateway.Modules.hostOptions(wasm.Options{})
	if o.PoolWait != wasm.DefaultPoolWait || o.BreakerFailures != wasm.DefaultBreakerFailures || o.BreakerBackoff != wasm.DefaultBreakerBackoff {
		t.Errorf("default host options: pool wait %v, breaker %d failures, backoff %v", o.PoolWait, o.BreakerFailures, o.BreakerBackoff)
	}
	ctx := context.Background()
	backoffs := filepath.Join(t.TempDir(), "module-backoff.json")
	m := ModulesConfig{PoolWaitMs: 250, BreakerFailures: 1, BreakerBackoffMs: 90_000}
	h, err := wasm.NewHost(ctx, m.hostOptions(wasm.Options{NoDiskCache: true, CallTimeout: 500 * time.Millisecond, BackoffFile: backoffs}))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	loopy := moduleFixture(t, "bad/loop-headers.wasm")
	reg, _ := wasm.NewRegistry(ctx, h, map[string]string{"loopy": loopy})
	reg.Headers(ctx, "loopy", wasm.HeadersRequest{Secret: "s"})
	skipped, err := wasm.ReadBackoffs(backoffs)
	if err != nil || len(skipped) != 1 {
		t.Fatalf("after one failure with breakerFailures 1: %v, %v", skipped, err)
	}
	if b := skipped[0]; b.Failures != 1 || b.Until.Sub(b.Since) != 90*time.Second {
		t.Errorf("backoff %+v, want 1 failure and 90s", b)
	}
}
