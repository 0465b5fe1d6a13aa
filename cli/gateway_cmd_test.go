package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/dotenv"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runningGateway is `opensoul gateway` run in-process on a free port.
type runningGateway struct {
	addr   string
	stdout *lockedBuffer
	stderr *lockedBuffer
	stop   func() error
}

func startGateway(t *testing.T, e *env, listen string) *runningGateway {
	t.Helper()
	g := &runningGateway{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	environ := map[string]string{"OPENSOUL_STATE_DIR": e.state}
	for k, v := range e.vars {
		environ[k] = v
	}
	a := &app{stdin: strings.NewReader(""), stdout: g.stdout, stderr: g.stderr, environ: environ}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	a.flagSets = []flagSetting{{Flag: "--listen", Key: "gateway.listen", Value: listen}}
	go func() { done <- a.runGateway(ctx, func(addr string) { ready <- addr }) }()
	select {
	case g.addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("gateway did not start: %v\n%s", err, g.stderr.String())
	}
	var once sync.Once
	var stopErr error
	g.stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() { g.stop() })
	return g
}

func (g *runningGateway) post(t *testing.T, path, token, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+g.addr+path, strings.NewReader(body))
	req.Header.Set("x-api-key", token)
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// fakeUpstream answers Anthropic messages, after release is closed when set.
type fakeUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	keys []string
}

func (f *fakeUpstream) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

func fakeAnthropic(t *testing.T, release <-chan struct{}) *fakeUpstream {
	f := &fakeUpstream{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && r.URL.Path == "/" && r.Header.Get("x-api-key") == "" && r.Header.Get("authorization") == "" {
			// The gateway's preconnect (gateway.preconnect), which carries
			// no credential (one that did is recorded below): not a request.
			w.WriteHeader(http.StatusNotFound)
			return
		}
		f.mu.Lock()
		f.keys = append(f.keys, r.Header.Get("x-api-key"))
		f.mu.Unlock()
		if release != nil {
			<-release
		}
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`)
	}))
	t.Cleanup(f.Close)
	return f
}

// TestGatewayFirstRun: a fresh machine gets a state dir and a generated
// token in <state>/.env (0600), instructions for the SDKs (never the
// token), and a gateway that serves with that token.
func TestGatewayFirstRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := fakeAnthropic(t, nil)
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+up.URL+"\n")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")

	g := startGateway(t, e, "127.0.0.1:0")
	fi, err := os.Stat(filepath.Join(e.state, ".env"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf(".env: %v %v", fi, err)
	}
	vars, err := dotenv.ReadFile(filepath.Join(e.state, ".env"))
	token := vars[envGatewayToken]
	if err != nil || token == "" {
		t.Fatalf("no token saved: %v %v", vars, err)
	}
	out := g.stdout.String()
	for _, want := range []string{"ANTHROPIC_BASE_URL=http://" + g.addr + "/anthropic", "OPENAI_BASE_URL=http://" + g.addr + "/openai/v1", "Generated a gateway token"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	resp, body := g.post(t, "/anthropic/v1/messages", token, `{"model":"m","max_tokens":1,"messages":[]}`)
	if resp.StatusCode != 200 || resp.Header.Get("x-opensoul-profile") != "anthropic:manual" {
		t.Fatalf("%d %q %s\n%s", resp.StatusCode, resp.Header.Get("x-opensoul-profile"), body, g.stderr.String())
	}
	if keys := up.seen(); len(keys) != 1 || keys[0] != fixAnthropicKey {
		t.Errorf("upstream did not get the stored key")
	}
	if resp, _ := g.post(t, "/anthropic/v1/messages", "wrong", `{}`); resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	all := out + g.stderr.String()
	for _, s := range []string{token, fixAnthropicKey} {
		if strings.Contains(all, s) {
			t.Errorf("a secret was printed:\n%s", all)
		}
	}
	// A second run keeps the token.
	g2 := startGateway(t, e, "127.0.0.1:0")
	vars2, _ := dotenv.ReadFile(filepath.Join(e.state, ".env"))
	if vars2[envGatewayToken] != token || strings.Contains(g2.stdout.String(), "Generated") {
		t.Errorf("the token changed on the second run")
	}
}

func TestGatewayRefusesOpenNonLoopback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, errOut, code := e.run("", "gateway", "--listen", "0.0.0.0:0")
	if code == 0 || !strings.Contains(errOut, "without a gateway token") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.state, ".env")); err == nil {
		t.Errorf("a token was generated for a refused listen")
	}
}

// TestGatewayReloadsAndDrains: config and policy edits apply while running,
// broken ones are refused and the old kept; stopping waits for in-flight
// requests.
func TestGatewayReloadsAndDrains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	slow := fakeAnthropic(t, release)
	fast := fakeAnthropic(t, nil)
	e.writeFile(".env", envGatewayToken+"="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+fast.URL+"\n")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--force")
	g := startGateway(t, e, "127.0.0.1:0")
	body := `{"model":"m","max_tokens":1,"messages":[]}`
	if resp, _ := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}

	e.writeFile("opensoul.yaml", "gateway:\n  maxBodyBytes: -1\n")
	waitUntil(t, "the broken config to be refused", func() bool { return strings.Contains(g.stderr.String(), "config change refused") })
	if resp, _ := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body); resp.StatusCode != 200 {
		t.Errorf("after a broken config: %d", resp.StatusCode)
	}
	e.writeFile("policies/broken.rego", "package opensoul.rules\n\ndeny contains x if {")
	waitUntil(t, "the broken policy to be refused", func() bool { return strings.Contains(g.stderr.String(), "policy change refused") })
	os.Remove(filepath.Join(e.state, "policies", "broken.rego"))

	// A new policy.dirs applies too: its rule denies the only profile. The
	// agents are warmed again for the policies now in force.
	warms := strings.Count(g.stderr.String(), `msg="agents warmed"`)
	other := e.writeFile("team-policies/deny.rego", "package opensoul.rules\n\ndeny contains {\"profile\": \"anthropic:manual\", \"reason\": \"moved to the team key\"} if true\n")
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+fast.URL+"\npolicy:\n  dirs: ["+filepath.Dir(other)+"]\n")
	waitUntil(t, "the new policy.dirs", func() bool { return strings.Contains(g.stderr.String(), "policy.dirs changed") })
	waitUntil(t, "the team policy to deny the profile", func() bool {
		resp, body := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body)
		return resp.StatusCode == 503 && strings.Contains(body, "moved to the team key")
	})
	waitUntil(t, "the agents warmed for the new policies", func() bool {
		return strings.Count(g.stderr.String(), `msg="agents warmed"`) > warms
	})

	// log.level applies live: at warn, a served request writes no line.
	requestLines := func() int { return strings.Count(g.stderr.String(), "msg=request") }
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+fast.URL+"\nlog:\n  level: warn\n")
	waitUntil(t, "log.level warn to silence request lines", func() bool {
		n := requestLines()
		resp, _ := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body)
		time.Sleep(200 * time.Millisecond) // the line is written after the response
		return resp.StatusCode == 200 && requestLines() == n
	})

	// Back to log.level info, and a slow upstream. (The warn step above
	// already went back to the default policy.dirs: its request was served.)
	reloads := strings.Count(g.stderr.String(), "config reloaded")
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+slow.URL+"\n")
	waitUntil(t, "the new config", func() bool { return strings.Count(g.stderr.String(), "config reloaded") > reloads })

	// An in-flight request survives the stop.
	got := make(chan int, 1)
	go func() {
		resp, _ := g.post(t, "/anthropic/v1/messages", fixGatewayToken, body)
		got <- resp.StatusCode
	}()
	waitUntil(t, "the request to reach the slow upstream", func() bool { return len(slow.seen()) > 0 })
	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }()
	select {
	case <-stopped:
		t.Fatal("the gateway stopped before its in-flight request finished")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if code := <-got; code != 200 {
		t.Errorf("in-flight request: %d", code)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
