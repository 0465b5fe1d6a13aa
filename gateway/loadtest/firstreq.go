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
// against the next 99 (loopback, fake upstream, wall clock). Build first:
//
//	go build -o /tmp/opensoul . && go run ./gateway/loadtest -firstreq /tmp/opensoul [-rounds 5]
func runFirstRequest(bin string, rounds int) error {
	upURL, stopUp := listen(http.HandlerFunc(upstream))
	defer stopUp()
	fmt.Printf("first request after /readyz, empty module cache, %d rounds (wall clock, loopback)\n", rounds)
	fmt.Printf("%-5s | %-10s | %-13s | %-18s | %s\n", "round", "ready in", "first request", "next 99: median", "first / median")
	for i := range rounds {
		r, err := firstRequestRound(bin, upURL)
		if err != nil {
			return err
		}
		fmt.Printf("%-5d | %10s | %13s | %18s | %.1fx\n", i+1, r.ready.Round(time.Millisecond), r.first.Round(10*time.Microsecond),
			r.median.Round(10*time.Microsecond), float64(r.first)/float64(r.median))
	}
	return nil
}

type firstRound struct{ ready, first, median time.Duration }

func firstRequestRound(bin, upURL string) (firstRound, error) {
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
	base := "http://" + addr
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Since(start) > time.Minute {
			return r, fmt.Errorf("not ready after a minute (last: %v)", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.ready = time.Since(start)
	var rest []time.Duration
	for i := range 100 {
		t := time.Now()
		if err := oneMessage(base); err != nil {
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
	return r, nil
}

func oneMessage(base string) error {
	req, _ := http.NewRequest("POST", base+"/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", gwToken)
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
