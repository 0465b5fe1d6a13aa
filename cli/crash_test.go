package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
)

// The crash test (issue 16's proof: "SIGKILL the gateway during a load
// run; on restart the usage store opens and totals are short by at most
// the last batch interval") runs the real binary against an upstream
// speaking Anthropic Messages, JSON and SSE, with usage in every answer.
//
// What makes the check exact rather than "about one second": at debug
// level the usage store logs, for every flush, the moment it cut the
// batch ("taken") before writing it, and again once it is committed. An
// answer is recorded by the gateway after the upstream wrote its last
// byte and before the client read it, so for the last committed cut T
//
//	answers the client had completely before T  <=  stored  <=  answers the upstream finished before T
//
// per model, and stored equals the sum of the committed batches. What
// the kill loses is then exactly what was recorded after T, the last cut,
// and T is at most one flush interval (usage.DefaultFlushInterval) plus
// one flush's duration before the kill; the test logs both.

const (
	crashKeyB     = "sk-ant-api03-CRASHsecondKeyAAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKllllMMMMnnnnOOOOppppQQQQrrrrSSSS9876"
	crashJSON     = "claude-sonnet-4-5" // answered as JSON
	crashSSE      = "claude-haiku-4-5"  // answered as an SSE stream
	crashWorkers  = 16
	crashRoundsEV = "OPENSOUL_CRASH_ROUNDS" // more rounds than the default 3
)

// crashUsage is what the upstream reports for each answer of a model.
var crashUsage = map[string]usage.Usage{
	crashJSON: {Input: 120, Output: 30, CacheRead: 40, CacheWrite: 10},
	crashSSE:  {Input: 200, Output: 80, CacheWrite: 50},
}

func TestGatewayCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it under load")
	}
	t.Parallel()
	bin := opensoulBinary(t)
	e := newEnv(t)
	up := newCrashUpstream(t)
	e.writeFile("opensoul.yaml", "providers:\n  anthropic:\n    baseUrl: "+up.URL+"\nlog:\n  level: debug\n  format: json\n")
	e.writeFile(".env", "OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\n")
	e.ok(fixAnthropicKey+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:a")
	e.ok(crashKeyB+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:b")

	rounds := 3
	if v, err := strconv.Atoi(os.Getenv(crashRoundsEV)); err == nil && v > 0 {
		rounds = v
	}
	before := storedByModel(t, e.state)
	for round := 1; round <= rounds; round++ {
		start := time.Now()
		g := startCrashGateway(t, bin, e)
		done := crashLoad(g.addr, start, up)
		// Kill at a random point in the flush cycle, once the store has
		// committed at least two batches of this run.
		g.waitFlushes(t, 2)
		time.Sleep(time.Duration(rand.Int64N(int64(usage.DefaultFlushInterval))))
		killed := time.Now()
		g.cmd.Process.Signal(syscall.SIGKILL)
		g.cmd.Wait()
		load := done()
		after := storedByModel(t, e.state) // opens the store: integrity checked
		checkCrashRound(t, round, g.flushes(t), delta(after, before), load, up.finished(start), killed)
		checkStateFiles(t, e.state)
		before = after
	}

	// A last start on the same state dir: the store opens without a
	// warning, serves, and a clean stop writes every answer.
	start := time.Now()
	g := startCrashGateway(t, bin, e)
	load := crashLoad(g.addr, start, up)
	g.waitFlushes(t, 1)
	g.cmd.Process.Signal(os.Interrupt)
	if err := g.cmd.Wait(); err != nil {
		t.Errorf("the gateway's clean stop: %v\n%s", err, g.stderr.String())
	}
	got := load()
	final := delta(storedByModel(t, e.state), before)
	for _, m := range []string{crashJSON, crashSSE} {
		answered := up.finished(start)[m]
		if n := len(answered); final[m].Requests != int64(n) || final[m].Requests != int64(len(got[m])) {
			t.Errorf("after a clean stop %s: stored %d, upstream answered %d, client got %d", m, final[m].Requests, n, len(got[m]))
		}
		checkTokens(t, "clean stop", m, final[m])
	}
	for _, bad := range []string{`"level":"WARN"`, `"level":"ERROR"`} {
		if strings.Contains(g.stderr.String(), bad) {
			t.Errorf("the restarted gateway logged a problem:\n%s", g.stderr.String())
		}
	}
	checkStateFiles(t, e.state)
}

// crashUpstream answers Anthropic Messages with fixed usage per model
// and notes when it finished each answer: just before writing its last
// bytes, so the gateway cannot have recorded the answer earlier.
type crashUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	done []crashAnswer
}

type crashAnswer struct {
	model string
	at    time.Time
}

func newCrashUpstream(t *testing.T) *crashUpstream {
	u := &crashUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *crashUpstream) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	us := crashUsage[req.Model]
	w.Header().Set("anthropic-ratelimit-tokens-limit", "1000000")
	w.Header().Set("anthropic-ratelimit-tokens-remaining", "900000")
	w.Header().Set("anthropic-ratelimit-tokens-reset", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if !req.Stream {
		w.Header().Set("content-type", "application/json")
		body := fmt.Sprintf(`{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d,"cache_creation_input_tokens":%d}}`,
			req.Model, us.Input, us.Output, us.CacheRead, us.CacheWrite)
		w.Header().Set("content-length", strconv.Itoa(len(body)))
		u.finish(req.Model)
		io.WriteString(w, body)
		return
	}
	w.Header().Set("content-type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	send := func(event, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		if fl != nil {
			fl.Flush()
		}
	}
	send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[],"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":1}}}`,
		req.Model, us.Input, us.CacheWrite, us.CacheRead))
	send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	for range 4 {
		send("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}`)
	}
	send("content_block_stop", `{"type":"content_block_stop","index":0}`)
	send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":%d}}`, us.Output))
	u.finish(req.Model)
	send("message_stop", `{"type":"message_stop"}`)
}

func (u *crashUpstream) finish(model string) {
	u.mu.Lock()
	u.done = append(u.done, crashAnswer{model, time.Now()})
	u.mu.Unlock()
}

// finished is the answers finished since start, by model.
func (u *crashUpstream) finished(start time.Time) map[string][]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string][]time.Time{}
	for _, a := range u.done {
		if !a.at.Before(start) {
			out[a.model] = append(out[a.model], a.at)
		}
	}
	return out
}

type crashGateway struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lockedBuffer
}

func startCrashGateway(t *testing.T, bin string, e *env) *crashGateway {
	t.Helper()
	cmd := exec.Command(bin, "gateway", "--listen", "127.0.0.1:0")
	cmd.Env = []string{"HOME=" + e.vars["HOME"], "PATH=" + os.Getenv("PATH"), "OPENSOUL_STATE_DIR=" + e.state}
	stdout, _ := cmd.StdoutPipe()
	g := &crashGateway{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	g.addr = bannerAddr(t, stdout)
	go io.Copy(io.Discard, stdout)
	return g
}

// flushLine is one of the usage store's debug lines.
type flushLine struct {
	Msg      string `json:"msg"`
	Taken    int64  `json:"taken"` // unix µs
	Requests int64  `json:"requests"`
}

func (g *crashGateway) flushes(t *testing.T) []flushLine {
	var out []flushLine
	sc := bufio.NewScanner(strings.NewReader(g.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l flushLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && strings.HasPrefix(l.Msg, "usage flush") {
			out = append(out, l)
		}
	}
	return out
}

func (g *crashGateway) waitFlushes(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c := 0
		for _, l := range g.flushes(t) {
			if l.Msg == "usage flushed" {
				c++
			}
		}
		if c >= n {
			return
		}
		if g.cmd.ProcessState != nil {
			break
		}
	}
	t.Fatalf("the gateway flushed no usage:\n%s", g.stderr.String())
}

// crashLoad runs crashWorkers clients against the gateway, half asking
// for JSON and half for streams, some in sessions, until the returned
// function is called (after the gateway is gone); that returns when each
// answer the clients read completely arrived, by model.
func crashLoad(addr string, start time.Time, up *crashUpstream) func() map[string][]time.Time {
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  = map[string][]time.Time{}
	)
	tr := &http.Transport{MaxIdleConnsPerHost: crashWorkers}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model, stream := crashJSON, false
			if w%2 == 1 {
				model, stream = crashSSE, true
			}
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`{"model":%q,"max_tokens":16,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
				req, _ := http.NewRequest("POST", "http://"+addr+"/anthropic/v1/messages", strings.NewReader(body))
				req.Header.Set("x-api-key", fixGatewayToken)
				req.Header.Set("content-type", "application/json")
				if w%4 < 2 {
					req.Header.Set("x-opensoul-session", fmt.Sprintf("crash-%d-%d", w, i%3))
				}
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the gateway is gone; stop comes soon
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				at := time.Now()
				if err != nil || resp.StatusCode != 200 || (stream && !strings.Contains(string(b), "message_stop")) {
					continue
				}
				mu.Lock()
				got[model] = append(got[model], at)
				mu.Unlock()
			}
		}()
	}
	return func() map[string][]time.Time {
		stop.Store(true)
		wg.Wait()
		tr.CloseIdleConnections()
		return got
	}
}

// storedByModel opens the usage store the way the gateway does, checks
// the file's integrity and sums it by model.
func storedByModel(t *testing.T, state string) map[string]usage.Row {
	t.Helper()
	s, err := usage.Open(usagePath(state), usage.Options{FlushInterval: -1})
	if err != nil {
		t.Fatalf("the usage store does not open after the kill: %v", err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Totals(context.Background(), usage.Query{By: "model"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]usage.Row{}
	for _, r := range rows {
		out[r.Key] = r
	}
	return out
}

func delta(after, before map[string]usage.Row) map[string]usage.Row {
	out := map[string]usage.Row{}
	for k, r := range after {
		b := before[k]
		b.Requests, b.Errors, b.Input, b.Output, b.CacheRead, b.CacheWrite, b.CostUSD =
			-b.Requests, -b.Errors, -b.Input, -b.Output, -b.CacheRead, -b.CacheWrite, -b.CostUSD
		r.Add(b)
		out[k] = r
	}
	return out
}

// checkCrashRound checks the store against the last committed cut, and
// logs what the kill cost.
func checkCrashRound(t *testing.T, round int, flushes []flushLine, stored map[string]usage.Row, clients, upstream map[string][]time.Time, killed time.Time) {
	t.Helper()
	// The committed batches; a batch cut but not yet reported committed
	// when the kill came may or may not have made it.
	var committed int64
	var cut int64 // unix µs of the last committed cut
	var open *flushLine
	for i, l := range flushes {
		switch l.Msg {
		case "usage flushing":
			open = &flushes[i]
		case "usage flushed":
			committed += open.Requests
			cut, open = l.Taken, nil
		}
	}
	total := stored[crashJSON].Requests + stored[crashSSE].Requests
	if total != committed && (open == nil || total != committed+open.Requests) {
		t.Fatalf("round %d: %d requests stored, the gateway committed %d (and had %+v in flight)", round, total, committed, open)
	}
	if open != nil && total != committed {
		cut = open.Taken
	}
	T := time.UnixMicro(cut)
	for _, m := range []string{crashJSON, crashSSE} {
		lo, hi := countBefore(clients[m], T), countBefore(upstream[m], T)
		if got := stored[m].Requests; got < int64(lo) || got > int64(hi) {
			t.Errorf("round %d %s: %d stored; the client had %d answers before the last cut, the upstream had finished %d", round, m, got, lo, hi)
		}
		checkTokens(t, fmt.Sprintf("round %d", round), m, stored[m])
	}
	answered := len(upstream[crashJSON]) + len(upstream[crashSSE])
	t.Logf("round %d: %d answers (%d flushes), %d stored; lost %d, all answered after the last cut, which came %v before the kill (flush interval %v)",
		round, answered, len(flushes)/2, total, int64(answered)-total, killed.Sub(T).Round(time.Millisecond), usage.DefaultFlushInterval)
}

func countBefore(ts []time.Time, cut time.Time) int {
	n := 0
	for _, at := range ts {
		if at.Before(cut) {
			n++
		}
	}
	return n
}

// checkTokens: every stored answer carries exactly its model's usage and
// price, so a row is never half an answer.
func checkTokens(t *testing.T, when, model string, r usage.Row) {
	t.Helper()
	u := crashUsage[model]
	n := r.Requests
	want := usage.Row{Key: model, Requests: n, Input: n * u.Input, Output: n * u.Output, CacheRead: n * u.CacheRead, CacheWrite: n * u.CacheWrite}
	got := r
	got.Provider, got.CostUSD = "", 0
	if got != want {
		t.Errorf("%s %s: stored %+v, want %+v", when, model, got, want)
	}
	price, ok := usage.Prices(usage.DefaultPrices).For(model)
	if !ok {
		t.Fatalf("no default price for %s", model)
	}
	if cost := float64(n*price.CostMicros(u)) / 1e6; math.Abs(r.CostUSD-cost) > 1e-9 {
		t.Errorf("%s %s: cost %v, want %v", when, model, r.CostUSD, cost)
	}
}

// checkStateFiles: the profiles, state and sessions the gateway was
// writing when it was killed still load, whole.
func checkStateFiles(t *testing.T, state string) {
	t.Helper()
	st := store.New(state)
	p, err := st.LoadProfiles("main")
	if err != nil {
		t.Fatalf("profiles after the kill: %v", err)
	}
	if p.Profiles["anthropic:a"].Key != fixAnthropicKey || p.Profiles["anthropic:b"].Key != crashKeyB {
		t.Errorf("profiles after the kill: %v", slices.Sorted(maps.Keys(p.Profiles)))
	}
	if _, err := st.LoadState("main"); err != nil {
		t.Errorf("state after the kill: %v", err)
	}
	if _, err := st.LoadSessions("main"); err != nil {
		t.Errorf("sessions after the kill: %v", err)
	}
	for _, f := range []string{st.ProfilesPath("main"), st.StatePath("main"), st.SessionsPath("main"), usagePath(state)} {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", filepath.Base(f), fi.Mode().Perm())
		}
	}
}
