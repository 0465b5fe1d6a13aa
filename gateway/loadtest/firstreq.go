package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// runFirstRequest measures what a client sees right after the gateway says
// it is ready: it starts the built opensoul binary with an empty state and
// an empty module cache (XDG_CACHE_HOME in a fresh temp dir), polls
// /readyz every 2 ms, and times the first request after it answers 200
// against the next 99 (loopback, fake upstream, wall clock). Each round
// does the same with a fresh bare reverse proxy process (the loadtest's
// own, answering /readyz itself): its first request opens the upstream
// connection too, which is what any proxy's first request pays. Build
// first:
//
//	go build -o /tmp/opensoul . && go run ./gateway/loadtest -firstreq /tmp/opensoul [-rounds 5] [-defaultmodel]
//
// The requested model is not configured, so the first request's policy
// decision is not among those the warm-up made; with defaultModel it is
// agents.defaults.model.primary, and the warm-up decides for it.
//
// With profiles > 1 the main agent holds that many keys: the warm-up
// checks and presents each, so readiness takes longer.
//
// "idle" is one more request after the 100, sent the way the first is:
// after 20 ms of /readyz polls every 2 ms with nothing else to do. What
// the first costs beyond it is first-time work in the process (code never
// run, memory never touched, a connection never used); what idle costs
// beyond the median is the machine coming back from idle (sleeping
// threads, cold caches), which no warm-up removes.
func runFirstRequest(bin string, rounds int, defaultModel bool, profiles int) error {
	upURL, stopUp := listen(http.HandlerFunc(upstream))
	defer stopUp()
	fmt.Printf("first request after /readyz, empty module cache, %d rounds (wall clock, loopback), requested model configured as the default: %v, profiles: %d\n", rounds, defaultModel, max(profiles, 1))
	fmt.Printf("%-5s | %-10s | %-36s | %s\n", "", "", "gateway", "bare proxy (fresh process)")
	fmt.Printf("%-5s | %-10s | %-8s %-8s %-8s %-9s | %-8s %-8s %-8s %s\n", "round", "ready in", "first", "median", "idle", "ratio", "first", "median", "idle", "ratio")
	for i := range rounds {
		r, err := firstRequestRound(bin, upURL, defaultModel, profiles)
		if err != nil {
			return err
		}
		b, err := bareFirstRound(upURL)
		if err != nil {
			return err
		}
		fmt.Printf("%-5d | %10s | %-8s %-8s %-8s %-9s | %-8s %-8s %-8s %.1fx\n", i+1, r.ready.Round(time.Millisecond),
			us(r.first), us(r.median), us(r.idle), fmt.Sprintf("%.1fx", float64(r.first)/float64(r.median)),
			us(b.first), us(b.median), us(b.idle), float64(b.first)/float64(b.median))
	}
	return nil
}

// bareFirstRound times a fresh bare proxy process's first request after
// its /readyz (answered by the proxy itself, so the upstream connection is
// not opened before it) against its next 99.
func bareFirstRound(upURL string) (firstRound, error) {
	srv, err := spawn("bare-first", upURL)
	if err != nil {
		return firstRound{}, err
	}
	defer srv.stop()
	r, err := timeFirst(srv.url, keyGood, time.Now())
	if err != nil {
		return r, fmt.Errorf("bare proxy: %w", err)
	}
	return r, nil
}

type firstRound struct{ ready, first, median, idle time.Duration }

func firstRequestRound(bin, upURL string, defaultModel bool, profiles int) (firstRound, error) {
	var r firstRound
	dir, err := os.MkdirTemp("", "opensoul-firstreq-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state")
	st := store.New(state)
	err = st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["anthropic:a"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyGood}
		for i := 1; i < profiles; i++ {
			key := fmt.Sprintf("%s%06d-00000000000000000000000000", scaleKeyPrefix, i)
			p.Profiles[fmt.Sprintf("anthropic:p%06d", i)] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: key}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	cfg := fmt.Sprintf("gateway:\n  listen: %s\n  auth:\n    token: %s\nproviders:\n  anthropic: {baseUrl: %s}\n", addr, gwToken, upURL)
	if defaultModel {
		cfg += "agents:\n  defaults:\n    model:\n      primary: anthropic/claude-sonnet-5\n"
	}
	if err := os.WriteFile(filepath.Join(state, "opensoul.yaml"), []byte(cfg), 0o600); err != nil {
		return r, err
	}
	cmd := exec.Command(bin, "gateway")
	cmd.Env = []string{"OPENSOUL_STATE_DIR=" + state, "HOME=" + dir, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	return timeFirst("http://"+addr, gwToken, start)
}

// timeFirst polls base's /readyz every 2 ms until it answers 200, then
// times 100 requests on the connection the polls opened: the first, and
// the median of the rest; then, after 20 ms more of polls, one more (idle).
func timeFirst(base, key string, start time.Time) (firstRound, error) {
	var r firstRound
	if err := pollReady(base, start, time.Minute); err != nil {
		return r, err
	}
	r.ready = time.Since(start)
	var rest []time.Duration
	for i := range 100 {
		t := time.Now()
		if err := oneMessage(base, key); err != nil {
			return r, fmt.Errorf("request %d: %w", i+1, err)
		}
		if i == 0 {
			r.first = time.Since(t)
		} else {
			rest = append(rest, time.Since(t))
		}
	}
	slices.Sort(rest)
	r.median = rest[len(rest)/2]
	idle := time.Now()
	for time.Since(idle) < 20*time.Millisecond {
		if err := pollReady(base, idle, time.Second); err != nil {
			return r, err
		}
		time.Sleep(2 * time.Millisecond)
	}
	t := time.Now()
	if err := oneMessage(base, key); err != nil {
		return r, fmt.Errorf("idle request: %w", err)
	}
	r.idle = time.Since(t)
	return r, nil
}

// pollReady asks base's /readyz every 2 ms until it answers 200, for at
// most limit after start.
func pollReady(base string, start time.Time, limit time.Duration) error {
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Since(start) > limit {
			return fmt.Errorf("not ready after %v (last: %v)", limit, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func oneMessage(base, key string) error {
	req, _ := http.NewRequest("POST", base+"/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
