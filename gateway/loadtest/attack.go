package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// runAttack measures the gateway's memory under hostile request bodies
// (-attack bodies), in a child process of its own as the other modes:
//
//   - declared: rounds of conns connections, each declaring a 32 MiB body
//     and sending 10 bytes, held open for hold, then closed;
//   - sent: conns connections each sending a whole 32 MiB body at once, so
//     that the body budget (gateway.bodyBudgetBytes, 128 MiB) decides who
//     waits and who gets 503.
//
// It prints the gateway's RSS after each round and its peak, and how the
// bodies were answered.
//
//	go run ./gateway/loadtest -attack bodies [-conns 40] [-rounds 4]
func runAttack(kind string, conns, rounds int, hold time.Duration) error {
	if kind != "bodies" {
		return fmt.Errorf("unknown -attack %q (want bodies)", kind)
	}
	up, stopUp := listen(http.HandlerFunc(upstream))
	defer stopUp()
	gw, err := spawn("gateway", up)
	if err != nil {
		return err
	}
	defer gw.stop()
	u, _ := url.Parse(gw.url)
	cur, peak := gw.rssMB()
	fmt.Printf("gateway idle: RSS %.0f MB\n", cur)
	for round := 1; round <= rounds; round++ {
		codes := declared(u.Host, conns, hold)
		cur, peak = gw.rssMB()
		fmt.Printf("declared round %d: %d conns × 32 MiB declared, 10 B sent, held %s: RSS %.0f MB (peak %.0f MB), answers %v\n",
			round, conns, hold, cur, peak, codes)
	}
	codes := sent(u.Host, conns)
	cur, peak = gw.rssMB()
	fmt.Printf("sent: %d conns × 32 MiB bodies at once: RSS %.0f MB (peak %.0f MB), answers %v\n", conns, cur, peak, codes)
	return nil
}

// declared opens conns connections that declare 32 MiB and send 10 bytes,
// holds them, closes them and counts the answers that came (408 once the
// body read deadline passes; none while it has not).
func declared(host string, conns int, hold time.Duration) map[string]int {
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", host)
			if err != nil {
				mu.Lock()
				codes["dial error"]++
				mu.Unlock()
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n{\"model\":", gwToken, 32<<20)
			c.SetReadDeadline(time.Now().Add(hold))
			code := "none in " + hold.String()
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				code = fmt.Sprint(resp.StatusCode)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

// sent posts conns whole 32 MiB bodies at once.
func sent(host string, conns int) map[string]int {
	pad := strings.Repeat("x", 32<<20-200)
	body := []byte(`{"model":"claude-sonnet-5","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"metadata":{"pad":"` + pad + `"}}`)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: conns}}
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+host+"/anthropic/v1/messages", bytes.NewReader(body))
			req.Header.Set("x-api-key", gwToken)
			code := "error"
			if resp, err := client.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = fmt.Sprint(resp.StatusCode)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}
