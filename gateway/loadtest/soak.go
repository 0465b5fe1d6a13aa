package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// Soak mode (-soak 10m) runs the gateway, in a child process over a temp
// state dir, for the given time under a mix of traffic, and reports
// whether anything grows or gets lost:
//
//   - its anthropic profiles' keys are answered by the fake upstream as
//     good (200), busy (429 with Retry-After: 2), unauthorized (401) and
//     flaky (every third request 500 or 503);
//   - json and sse clients (half with a session header), hostile bodies
//     (a declared length never sent, malformed JSON, a body over
//     maxBodyBytes), slow clients (a body sent in pieces, a stream read
//     slowly) and CLI writers (the built opensoul binary storing a new
//     profile per run with paste-token, now and then clear-cooldown) all
//     run at once;
//   - every few seconds it samples the gateway's RSS (/proc), goroutines
//     and open files (its /metrics) and prints a line;
//   - at the end it prints RSS start/max/end, goroutines and open files
//     first third vs last third of the samples, outcomes by traffic class,
//     and how many profiles a CLI writer stored successfully are missing
//     from auth-profiles.json after the gateway stopped.
//
// It exits non-zero when a stored profile is missing or the gateway died.
//
//	go run ./gateway/loadtest -soak 10m

// Key prefixes the soak upstream tells apart.
const (
	soakGood  = "sk-ant-api03-soak-good-"
	soakBusy  = "sk-ant-api03-soak-busy-"
	soakBad   = "sk-ant-api03-soak-bad-"
	soakFlaky = "sk-ant-api03-soak-flaky-"
)

// Limits the soak gateway runs with, small so that the hostile bodies hit
// them quickly.
const (
	soakMaxBody  = 1 << 20
	soakBodyRead = 5 * time.Second
)

func soakKey(prefix, name string) string {
	return prefix + name + strings.Repeat("0", 40-len(name))
}

var flakyCount atomic.Int64

// soakUpstream answers each key as its prefix says; good keys get the
// harness's usual JSON or SSE answer.
func soakUpstream(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("x-api-key")
	switch {
	case strings.HasPrefix(key, soakBusy):
		io.Copy(io.Discard, r.Body)
		w.Header().Set("retry-after", "2")
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(429)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}}`)
		return
	case strings.HasPrefix(key, soakFlaky) && flakyCount.Add(1)%3 == 0:
		io.Copy(io.Discard, r.Body)
		code := []int{500, 503}[flakyCount.Load()%2]
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, `{"type":"error","error":{"type":"api_error","message":"flaky"}}`)
		return
	case strings.HasPrefix(key, soakGood), strings.HasPrefix(key, soakFlaky):
		r.Header.Set("x-api-key", keyGood)
	}
	upstream(w, r) // 401 for any other key
}

// newSoakGateway builds the gateway over dir with one profile of each kind.
func newSoakGateway(ctx context.Context, upstreamURL, dir string) (*gateway.Server, func(), error) {
	st := store.New(dir)
	err := st.UpdateProfiles("main", func(p *store.Profiles) error {
		for _, k := range []struct{ id, prefix string }{{"good", soakGood}, {"busy", soakBusy}, {"bad", soakBad}, {"flaky", soakFlaky}} {
			p.Profiles["anthropic:"+k.id] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: soakKey(k.prefix, k.id)}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	gw, err := wire(ctx, st, policy.Options{}, true, gateway.Options{
		Config: gateway.Config{
			Token:           gwToken,
			MaxBodyBytes:    soakMaxBody,
			BodyReadTimeout: soakBodyRead,
			Providers:       map[string]gateway.Upstream{"anthropic": {BaseURL: upstreamURL}},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return gw, func() { gw.Close() }, nil
}

// tally counts outcomes (a status code or a transport error kind) by
// traffic class.
type tally struct {
	mu sync.Mutex
	m  map[string]map[string]int
	n  atomic.Int64
}

func (t *tally) add(class, outcome string) {
	t.n.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]map[string]int{}
	}
	if t.m[class] == nil {
		t.m[class] = map[string]int{}
	}
	t.m[class][outcome]++
}

// errKind names a transport error briefly.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "transport error"
}

// soakRun is one soak: the gateway child, its state dir, the built CLI
// and what the traffic saw.
type soakRun struct {
	gw      *server
	dir     string // state dir shared by the gateway and the CLI writers
	home    string // HOME for the CLI, so that no real config is read
	bin     string // the built opensoul binary
	client  *http.Client
	outcome tally

	mu      sync.Mutex
	stored  []string // profile ids a CLI writer stored (exit 0)
	cliErrs []string // the first few CLI failures
}

func (s *soakRun) url() string { return s.gw.url + "/anthropic/v1/messages" }

func (s *soakRun) request(ctx context.Context, body io.Reader, stream bool, session string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url(), body)
	req.Header.Set("x-api-key", gwToken)
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	if session != "" {
		req.Header.Set("x-opensoul-session", session)
	}
	if stream {
		req.Header.Set("accept", "text/event-stream")
	}
	return req
}

// do sends req and reads the answer with read (io.Copy when nil).
func (s *soakRun) do(req *http.Request, read func(io.Reader) error) string {
	resp, err := s.client.Do(req)
	if err != nil {
		return errKind(err)
	}
	defer resp.Body.Close()
	if read == nil {
		read = func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	}
	if err := read(resp.Body); err != nil {
		return fmt.Sprintf("%d then %s", resp.StatusCode, errKind(err))
	}
	return fmt.Sprint(resp.StatusCode)
}

// A traffic class: one request (or CLI run) per call, its outcome.
type class struct {
	name    string
	workers int
	one     func(ctx context.Context, s *soakRun, i int) string
}

var soakClasses = []class{
	{"json", 3, func(ctx context.Context, s *soakRun, i int) string {
		return s.do(s.request(ctx, strings.NewReader(reqBody), false, session(i)), nil)
	}},
	{"sse", 2, func(ctx context.Context, s *soakRun, i int) string {
		return s.do(s.request(ctx, strings.NewReader(streamRq), true, session(i)), nil)
	}},
	{"declared-length", 1, declaredLength},
	{"malformed-json", 1, func(ctx context.Context, s *soakRun, i int) string {
		return s.do(s.request(ctx, strings.NewReader(`{"model":"claude-sonnet-5","messages":[{"role":`), false, session(i)), nil)
	}},
	{"oversized", 1, func(ctx context.Context, s *soakRun, i int) string {
		return s.do(s.request(ctx, strings.NewReader(strings.Repeat("x", soakMaxBody+1024)), false, ""), nil)
	}},
	{"slow-body", 2, slowBody},
	{"slow-read", 2, func(ctx context.Context, s *soakRun, i int) string {
		return s.do(s.request(ctx, strings.NewReader(streamRq), true, session(i)), slowRead)
	}},
	{"cli-writer", 2, cliWrite},
}

// session names a session on every other request, a few distinct ones.
func session(i int) string {
	if i%2 == 0 {
		return ""
	}
	return fmt.Sprintf("soak-%d", i%7)
}

// declaredLength declares a body and sends 10 bytes of it: 512 KiB (the
// body read deadline must answer 408) or 32 MiB (over maxBodyBytes: 413).
func declaredLength(ctx context.Context, s *soakRun, i int) string {
	u, _ := url.Parse(s.gw.url)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		return errKind(err)
	}
	defer c.Close()
	declared := 512 << 10
	if i%2 == 1 {
		declared = 32 << 20
	}
	fmt.Fprintf(c, "POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n{\"model\":", gwToken, declared)
	c.SetReadDeadline(time.Now().Add(3 * soakBodyRead))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return errKind(err)
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// slowBody sends a JSON body in eight pieces over about two seconds.
func slowBody(ctx context.Context, s *soakRun, i int) string {
	pr, pw := io.Pipe()
	go func() {
		step := (len(reqBody) + 7) / 8
		for off := 0; off < len(reqBody); off += step {
			time.Sleep(250 * time.Millisecond)
			if _, err := io.WriteString(pw, reqBody[off:min(off+step, len(reqBody))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	defer pr.Close()
	req := s.request(ctx, pr, false, session(i))
	req.ContentLength = int64(len(reqBody))
	return s.do(req, nil)
}

// slowRead reads a stream 64 bytes at a time, 50 ms apart.
func slowRead(r io.Reader) error {
	buf := make([]byte, 64)
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var cliSeq atomic.Int64

// cliWrite runs the built CLI once: paste-token of a new profile
// anthropic:soakN (key on stdin), or every fourth time clear-cooldown.
func cliWrite(ctx context.Context, s *soakRun, i int) string {
	if i%4 == 3 {
		out, err := s.cli(ctx, "", "models", "auth", "clear-cooldown", "--provider", "anthropic")
		return s.cliOutcome(ctx, "clear-cooldown", out, err)
	}
	id := fmt.Sprintf("anthropic:soak%d", cliSeq.Add(1))
	out, err := s.cli(ctx, soakKey(soakGood, strings.TrimPrefix(id, "anthropic:"))+"\n",
		"models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", id, "--type", "api_key")
	if err == nil {
		s.mu.Lock()
		s.stored = append(s.stored, id)
		s.mu.Unlock()
	}
	return s.cliOutcome(ctx, "paste-token", out, err)
}

func (s *soakRun) cli(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"--state-dir", s.dir}, args...)...)
	cmd.Env = []string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	return cmd.CombinedOutput()
}

func (s *soakRun) cliOutcome(ctx context.Context, what string, out []byte, err error) string {
	if err == nil {
		return what + " ok"
	}
	if ctx.Err() != nil {
		return "stopped" // killed at the end of the soak: not counted
	}
	s.mu.Lock()
	if len(s.cliErrs) < 5 {
		s.cliErrs = append(s.cliErrs, fmt.Sprintf("%s: %v: %s", what, err, strings.TrimSpace(string(out))))
	}
	s.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("%s exit %d", what, ee.ExitCode())
	}
	return what + " " + errKind(err)
}

// sample is one reading of the gateway process; -1 where not available.
type sample struct {
	at         time.Duration
	rss        float64
	goroutines float64
	fds        float64 // from /proc/<pid>/fd
	healthy    bool
}

func (s *soakRun) sample(since time.Time) sample {
	cur, _ := s.gw.rssMB()
	m := s.metrics()
	return sample{at: time.Since(since), rss: cur, goroutines: m["go_goroutines"], fds: procFDs(s.gw.cmd.Process.Pid), healthy: s.healthy()}
}

// metrics reads the gateway's unlabelled series from /metrics (-1 absent).
func (s *soakRun) metrics() map[string]float64 {
	m := map[string]float64{"go_goroutines": -1}
	resp, err := s.client.Get(s.gw.url + "/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var name string
		var v float64
		if n, _ := fmt.Sscanf(sc.Text(), "%s %g", &name, &v); n == 2 && !strings.HasPrefix(name, "#") {
			m[name] = v
		}
	}
	return m
}

func procFDs(pid int) float64 {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return float64(len(ents))
}

func (s *soakRun) healthy() bool {
	resp, err := s.client.Get(s.gw.url + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// runSoak runs the soak for d and reports; see the comment above.
func runSoak(d time.Duration) error {
	tmp, err := os.MkdirTemp("", "opensoul-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	s := &soakRun{dir: filepath.Join(tmp, "state"), home: filepath.Join(tmp, "home"), bin: filepath.Join(tmp, "opensoul"),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
	fmt.Println("building opensoul for the CLI writers…")
	if out, err := exec.Command("go", "build", "-o", s.bin, "github.com/opensoul/opensoul").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	os.MkdirAll(s.home, 0o700)
	upURL, stopUp := listen(http.HandlerFunc(soakUpstream))
	defer stopUp()
	if s.gw, err = spawn("soak", upURL, "-state", s.dir); err != nil {
		return err
	}
	samples := s.drive(d)
	died := !samples[len(samples)-1].healthy
	s.gw.stop()
	lost, err := s.lostWrites()
	if err != nil {
		return err
	}
	s.report(samples, lost, died)
	if died || len(lost) > 0 {
		return fmt.Errorf("soak failed: gateway died %v, %d stored profiles lost", died, len(lost))
	}
	return nil
}

// soakEvery is how often the gateway is sampled.
const soakEvery = 5 * time.Second

// drive runs every traffic class for d, sampling and printing progress,
// and returns the samples (the first before any traffic, the last after).
func (s *soakRun) drive(d time.Duration) []sample {
	start := time.Now()
	samples := []sample{s.sample(start)}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range soakClasses {
		for w := range c.workers {
			wg.Go(func() {
				for i := w; ctx.Err() == nil; i += c.workers {
					if out := c.one(ctx, s, i); ctx.Err() == nil {
						s.outcome.add(c.name, out)
					}
				}
			})
		}
	}
	tick := time.NewTicker(soakEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			smp := s.sample(start)
			samples = append(samples, smp)
			s.mu.Lock()
			stored := len(s.stored)
			s.mu.Unlock()
			fmt.Printf("%6s  rss %5.1f MB  goroutines %4.0f  fds %3.0f  requests %7d  profiles stored %4d  healthy %v\n",
				smp.at.Truncate(time.Second), smp.rss, smp.goroutines, smp.fds, s.outcome.n.Load(), stored, smp.healthy)
		}
	}
	wg.Wait()
	return append(samples, s.sample(start))
}

// lostWrites lists the profile ids a CLI writer stored that the agent's
// auth-profiles.json no longer holds.
func (s *soakRun) lostWrites() ([]string, error) {
	p, err := store.New(s.dir).LoadProfiles("main")
	if err != nil {
		return nil, err
	}
	var lost []string
	for _, id := range s.stored {
		if _, ok := p.Profiles[id]; !ok {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

func (s *soakRun) report(samples []sample, lost []string, died bool) {
	first, last := samples[0], samples[len(samples)-1]
	peak := slices.MaxFunc(samples, func(a, b sample) int { return int(a.rss*1000 - b.rss*1000) })
	fmt.Printf("\nsoak report (%s, busy shared machine: figures are indicative)\n", last.at.Truncate(time.Second))
	fmt.Printf("RSS: start %.1f MB, max %.1f MB, end %.1f MB\n", first.rss, peak.rss, last.rss)
	fmt.Printf("flat? (mean of the first third of the samples under load vs the last third)\n")
	fmt.Printf("  RSS %s\n", thirds(samples, func(x sample) float64 { return x.rss }, "MB"))
	if first.goroutines < 0 {
		fmt.Println("  goroutines: not available (no go_goroutines in /metrics)")
	} else {
		fmt.Printf("  goroutines %s\n", thirds(samples, func(x sample) float64 { return x.goroutines }, ""))
	}
	fmt.Printf("  open fds %s\n", thirds(samples, func(x sample) float64 { return x.fds }, ""))
	fmt.Printf("outcomes by traffic class (%d in all):\n", s.outcome.n.Load())
	for _, c := range soakClasses {
		fmt.Printf("  %-16s %s\n", c.name, counts(s.outcome.m[c.name]))
	}
	for _, e := range s.cliErrs {
		fmt.Printf("  cli failure: %s\n", e)
	}
	fmt.Printf("state writes: %d profiles stored by CLI writers, %d lost %v\n", len(s.stored), len(lost), lost)
	fmt.Printf("gateway died: %v\n", died)
}

// thirds compares the mean of the first and last thirds of the samples
// taken under load (not the one before the traffic and the one after).
func thirds(samples []sample, f func(sample) float64, unit string) string {
	if len(samples) >= 5 {
		samples = samples[1 : len(samples)-1]
	}
	n := max(len(samples)/3, 1)
	mean := func(xs []sample) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += f(x)
		}
		return sum / float64(len(xs))
	}
	a, b := mean(samples[:n]), mean(samples[len(samples)-n:])
	change := 0.0
	if a != 0 {
		change = 100 * (b - a) / a
	}
	return fmt.Sprintf("%.1f → %.1f %s (%+.1f%%)", a, b, unit, change)
}

// counts prints outcomes, most frequent first.
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
