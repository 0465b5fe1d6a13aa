// Package crashtest kills a real opensoul gateway under load and checks
// its usage store against what was answered (issue 16's proof: "SIGKILL
// the gateway during a load run; on restart the usage store opens and
// totals are short by at most the last batch interval"). The cli tests
// (TestGatewayCrash) and the load harness (go run ./gateway/loadtest
// -crash BIN) both drive it.
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
// and T comes at most one flush interval (usage.DefaultFlushInterval)
// plus one flush's duration before the kill.
package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
)

// The models the load asks for: one answered as JSON, one as an SSE
// stream.
const (
	ModelJSON = "claude-sonnet-4-5"
	ModelSSE  = "claude-haiku-4-5"
)

// Models are the two models, JSON first.
var Models = []string{ModelJSON, ModelSSE}

// Usage is what the upstream reports for each answer of a model.
var Usage = map[string]usage.Usage{
	ModelJSON: {Input: 120, Output: 30, CacheRead: 40, CacheWrite: 10},
	ModelSSE:  {Input: 200, Output: 80, CacheWrite: 50},
}

// Config is the opensoul.yaml the gateway runs with: providers pointing
// at upstream, and the debug log whose flush lines the check reads.
func Config(upstream string) string {
	return "providers:\n  anthropic:\n    baseUrl: " + upstream + "\nlog:\n  level: debug\n  format: json\n"
}

// Upstream answers Anthropic Messages with Usage per model and
// rate-limit headers, and notes when it finished each answer: just
// before writing its last bytes, so the gateway cannot have recorded the
// answer earlier.
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	done []answer
}

type answer struct {
	model string
	at    time.Time
}

// NewUpstream starts an Upstream on loopback; Close it.
func NewUpstream() *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	return u
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	us := Usage[req.Model]
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

func (u *Upstream) finish(model string) {
	u.mu.Lock()
	u.done = append(u.done, answer{model, time.Now()})
	u.mu.Unlock()
}

// Finished is the answers finished since start, by model.
func (u *Upstream) Finished(start time.Time) map[string][]time.Time {
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

// Gateway is a running `opensoul gateway` child.
type Gateway struct {
	Cmd    *exec.Cmd
	Addr   string
	stderr lockedBuffer
}

// Start runs `bin gateway --listen 127.0.0.1:0` with env and waits for its
// address (the first line of its output).
func Start(bin string, env []string) (*Gateway, error) {
	cmd := exec.Command(bin, "gateway", "--listen", "127.0.0.1:0")
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	g := &Gateway{Cmd: cmd}
	cmd.Stderr = &g.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	r := bufio.NewReader(stdout)
	go func() {
		s, _ := r.ReadString('\n')
		line <- s
		io.Copy(io.Discard, r)
	}()
	select {
	case s := <-line:
		m := regexp.MustCompile(`http://([0-9.:]+)`).FindStringSubmatch(s)
		if m == nil {
			g.Kill()
			return nil, fmt.Errorf("no address in the gateway's banner %q\n%s", s, g.Log())
		}
		g.Addr = m[1]
		return g, nil
	case <-time.After(2 * time.Minute):
		g.Kill()
		return nil, fmt.Errorf("the gateway printed nothing\n%s", g.Log())
	}
}

// Kill SIGKILLs the gateway and waits for it.
func (g *Gateway) Kill() {
	g.Cmd.Process.Kill()
	g.Cmd.Wait()
}

// Log is what the gateway wrote to stderr.
func (g *Gateway) Log() string { return g.stderr.String() }

// Flush is one of the usage store's debug lines: "usage flushing" when
// a batch was cut, "usage flushed" once it is committed.
type Flush struct {
	Msg      string `json:"msg"`
	Taken    int64  `json:"taken"` // unix µs
	Requests int64  `json:"requests"`
}

// Flushes are the flush lines the gateway logged so far.
func (g *Gateway) Flushes() []Flush {
	var out []Flush
	sc := bufio.NewScanner(strings.NewReader(g.Log()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l Flush
		if json.Unmarshal(sc.Bytes(), &l) == nil && strings.HasPrefix(l.Msg, "usage flush") {
			out = append(out, l)
		}
	}
	return out
}

// WaitFlushes waits until the gateway committed n batches.
func (g *Gateway) WaitFlushes(n int) error {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c := 0
		for _, l := range g.Flushes() {
			if l.Msg == "usage flushed" {
				c++
			}
		}
		if c >= n {
			return nil
		}
	}
	return fmt.Errorf("the gateway committed no usage:\n%s", g.Log())
}

// Clients is what the clients of a Load got: when each answer they read
// whole arrived, by model, and how many times they got something else,
// by status and the start of the body (what a killed gateway leaves: a
// cut connection, status 0).
type Clients struct {
	Answers map[string][]time.Time
	Failed  map[string]int
}

// Load runs workers clients against the gateway at addr with token,
// half asking for JSON and half for streams, half of those in sessions,
// until the returned function is called (after the gateway is gone),
// which returns what they got.
func Load(addr, token string, workers int) (stop func() Clients) {
	var (
		stopped atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		got     = Clients{Answers: map[string][]time.Time{}, Failed: map[string]int{}}
	)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model, stream := ModelJSON, false
			if w%2 == 1 {
				model, stream = ModelSSE, true
			}
			for i := 0; !stopped.Load(); i++ {
				body := fmt.Sprintf(`{"model":%q,"max_tokens":16,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
				req, _ := http.NewRequest("POST", "http://"+addr+"/anthropic/v1/messages", strings.NewReader(body))
				req.Header.Set("x-api-key", token)
				req.Header.Set("content-type", "application/json")
				if w%4 < 2 {
					req.Header.Set("x-opensoul-session", fmt.Sprintf("crash-%d-%d", w, i%3))
				}
				status, b, err := do(client, req)
				at := time.Now()
				mu.Lock()
				if err == nil && status == 200 && (!stream || bytes.Contains(b, []byte("message_stop"))) {
					got.Answers[model] = append(got.Answers[model], at)
				} else {
					got.Failed[fmt.Sprintf("%d %.60s", status, b)]++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the gateway is gone; stop comes soon
				}
			}
		}()
	}
	return func() Clients {
		stopped.Store(true)
		wg.Wait()
		tr.CloseIdleConnections()
		return got
	}
}

func do(client *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Stored opens the usage store at path the way the gateway does, checks
// the file's integrity and sums it by model.
func Stored(path string) (map[string]usage.Row, error) {
	s, err := usage.Open(path, usage.Options{FlushInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("the usage store does not open: %w", err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		return nil, err
	}
	rows, err := s.Totals(context.Background(), usage.Query{By: "model"})
	if err != nil {
		return nil, err
	}
	out := map[string]usage.Row{}
	for _, r := range rows {
		out[r.Key] = r
	}
	return out, nil
}

// Delta is after minus before, per model.
func Delta(after, before map[string]usage.Row) map[string]usage.Row {
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

// Round is what one kill cost.
type Round struct {
	Answered  int64         // answers the upstream finished
	Completed int64         // answers the clients read whole
	Stored    int64         // requests the store holds of this run
	Batches   int           // batches committed
	CutAgo    time.Duration // the last committed cut, before the kill
	// LastInterval is the answers the upstream finished in the last flush
	// interval before the kill: what "short by at most the last batch
	// interval" allows. Lost stays within it while the flusher keeps its
	// beat (a starved machine can delay a flush; not asserted).
	LastInterval int64
}

// Lost is what the kill cost: answers finished but not stored.
func (r Round) Lost() int64 { return r.Answered - r.Stored }

// Check checks a killed run's stored usage (by model) against the
// gateway's flush lines, the clients' and the upstream's answers, and
// says what the kill cost.
func Check(flushes []Flush, stored map[string]usage.Row, clients Clients, upstream map[string][]time.Time, killed time.Time) (Round, error) {
	// The committed batches; a batch cut but not yet reported committed
	// when the kill came may or may not have made it.
	var r Round
	var committed, cut int64 // cut: unix µs of the last committed cut
	var open *Flush
	for i, l := range flushes {
		switch l.Msg {
		case "usage flushing":
			open = &flushes[i]
		case "usage flushed":
			if open != nil {
				committed += open.Requests
			}
			cut, open = l.Taken, nil
			r.Batches++
		}
	}
	for _, m := range Models {
		r.Stored += stored[m].Requests
		r.Answered += int64(len(upstream[m]))
		r.Completed += int64(len(clients.Answers[m]))
	}
	var errs []error
	if r.Completed == 0 {
		return r, fmt.Errorf("no client got an answer: %v", clients.Failed)
	}
	if r.Stored != committed && (open == nil || r.Stored != committed+open.Requests) {
		return r, fmt.Errorf("%d requests stored, the gateway committed %d (and had %+v in flight)", r.Stored, committed, open)
	}
	if open != nil && r.Stored != committed {
		cut = open.Taken
		r.Batches++
	}
	T := time.UnixMicro(cut)
	r.CutAgo = killed.Sub(T)
	for _, m := range Models {
		r.LastInterval += int64(len(upstream[m])) - countBefore(upstream[m], killed.Add(-usage.DefaultFlushInterval))
	}
	for _, m := range Models {
		lo, hi := countBefore(clients.Answers[m], T), countBefore(upstream[m], T)
		if got := stored[m].Requests; got < lo || got > hi {
			errs = append(errs, fmt.Errorf("%s: %d stored; the clients had %d answers before the last cut, the upstream had finished %d", m, got, lo, hi))
		}
		errs = append(errs, WholeAnswers(m, stored[m]))
	}
	return r, errors.Join(errs...)
}

func countBefore(ts []time.Time, cut time.Time) int64 {
	var n int64
	for _, at := range ts {
		if at.Before(cut) {
			n++
		}
	}
	return n
}

// WholeAnswers checks that a model's stored row is whole answers: every
// one carries exactly the model's Usage and price.
func WholeAnswers(model string, r usage.Row) error {
	u := Usage[model]
	n := r.Requests
	want := usage.Row{Key: model, Requests: n, Usage: usage.Usage{Input: n * u.Input, Output: n * u.Output, CacheRead: n * u.CacheRead, CacheWrite: n * u.CacheWrite}}
	got := r
	got.Key, got.Provider, got.CostUSD, got.Seen = model, "", 0, false
	if got != want {
		return fmt.Errorf("%s: stored %+v, want %+v", model, got, want)
	}
	price, ok := usage.Prices(usage.DefaultPrices).For(model)
	if !ok {
		return fmt.Errorf("no default price for %s", model)
	}
	// Whole micro-dollars per answer; Delta's float subtraction may leave
	// far less than one.
	if cost := float64(n*price.CostMicros(u)) / 1e6; math.Abs(r.CostUSD-cost) > 1e-9 {
		return fmt.Errorf("%s: cost %v, want %v", model, r.CostUSD, cost)
	}
	return nil
}

// StateFiles checks that the profiles, state and sessions of agent main
// the gateway was writing when it was killed still load whole, with the
// keys (profile id → key) in them, and are 0600.
func StateFiles(dir string, keys map[string]string) error {
	st := store.New(dir)
	p, err := st.LoadProfiles(store.DefaultAgent)
	if err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	for id, key := range keys {
		if p.Profiles[id].Key != key {
			return fmt.Errorf("profiles: %s lost its key", id)
		}
	}
	if _, err := st.LoadState(store.DefaultAgent); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if _, err := st.LoadSessions(store.DefaultAgent); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	for _, f := range []string{st.ProfilesPath(store.DefaultAgent), st.StatePath(store.DefaultAgent), st.SessionsPath(store.DefaultAgent)} {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm() != 0o600 {
			return fmt.Errorf("%s: mode %v", f, fi.Mode().Perm())
		}
	}
	return nil
}

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
