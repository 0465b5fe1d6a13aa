package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// spread checks that traffic naming no session rotates: n keys with no
// explicit order (round robin, least recently used first), 32 closed-loop
// connections for d without any session header, and each key's share of
// the requests the fake upstream saw. It fails when a key is outside
// 15–35% (for n = 4; generally within ±60% of an even share).
func spread(n int, d time.Duration) error {
	ctx := context.Background()
	var mu sync.Mutex
	served := map[string]int{}
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		served[r.Header.Get("x-api-key")]++
		mu.Unlock()
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`)
	})
	upURL, stopUp := listen(up)
	defer stopUp()

	dir, err := os.MkdirTemp("", "opensoul-spread-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st := store.New(dir)
	keys := make([]string, n)
	err = st.UpdateProfiles("main", func(p *store.Profiles) error {
		for i := range keys {
			keys[i] = fmt.Sprintf("sk-ant-api03-spread-%02d-%s", i, strings.Repeat("x", 40))
			p.Profiles[fmt.Sprintf("anthropic:k%02d", i)] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keys[i]}
		}
		return nil
	})
	if err != nil {
		return err
	}
	engine, err := policy.New(ctx, policy.Options{})
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Options{
		Store: st, Selector: engine, Logger: slog.New(slog.DiscardHandler),
		Config: gateway.Config{Token: gwToken, Providers: map[string]gateway.Upstream{"anthropic": {BaseURL: upURL}}},
	})
	if err != nil {
		return err
	}
	defer gw.Close()
	gwURL, stopGW := listen(gw)
	defer stopGW()

	client := &http.Client{Transport: tunedTransport()}
	var total, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("POST", gwURL+"/anthropic/v1/messages", strings.NewReader(reqBody))
				req.Header.Set("x-api-key", gwToken)
				req.Header.Set("anthropic-version", "2023-06-01")
				req.Header.Set("content-type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("spread: %d keys, no session header, 32 conns for %s: %d requests (%d failed)\n", n, d, total.Load(), failed.Load())
	even := 1 / float64(n)
	var bad []string
	sum := 0
	for _, k := range keys {
		sum += served[k]
	}
	for i, k := range keys {
		share := float64(served[k]) / float64(max(sum, 1))
		fmt.Printf("  anthropic:k%02d  %6d requests  %5.1f%%\n", i, served[k], 100*share)
		if share < even*0.6 || share > even*1.4 {
			bad = append(bad, fmt.Sprintf("anthropic:k%02d %.1f%%", i, 100*share))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("session-less traffic did not spread: %s", strings.Join(bad, ", "))
	}
	return nil
}
