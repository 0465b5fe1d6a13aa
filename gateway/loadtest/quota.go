package main

// The quota proof (issue 16): does the gateway move off a key before the
// provider runs it dry?
//
//	go run ./gateway/loadtest -quota 30s          # the gateway sees the rate-limit headers
//	go run ./gateway/loadtest -quota 30s -blind   # the same with no headers on success: round robin
//
// The fake upstream gives each of three keys a token bucket, as Anthropic's
// rate limits are: a capacity, refilled continuously at capacity per
// window (-window, 10 s). Every answer costs quotaCost tokens and carries
// anthropic-ratelimit-tokens-limit, -remaining and -reset (the time the
// bucket is full again), so the anthropic module's observe op turns it into
// the profile's headroom. A key answers 429 (with retry-after) only when its
// bucket cannot pay for a request. The keys are unequal: "small" refills
// at 8% of the total, big1 and big2 at 46% each.
//
// The harness first drives the gateway for 3 s with unlimited keys to learn
// its throughput R on this machine, then sizes the buckets so the three
// together refill 1.5 × R × quotaCost tokens a second (-margin 1.5): enough for the
// whole load if it is spread by headroom, while round robin sends a third
// of the load to the small key, which refills only an eighth of that.
// With a long -window (300s) and a small -margin (0.1) the buckets hardly
// refill during the run and hold together about what it asks for: the
// keys are drained, and the question is whether they all run low together
// (each key its share) or one runs dry while others have plenty.
// Then it drives 32 connections through the gateway alone for the given
// time and reports, per key, the requests served and the 429s received,
// and the decision cache's hit rate over the run
// (opensoul_policy_decisions_total and _evaluations_total in the gateway's
// /metrics). Then the throughput: rounds of -round (3s), as many as fit in
// the given time, each through the gateway and right before or after it
// through the bare proxy over the same upstream, at the same 32
// connections, bare first in every other pair so that a machine speeding
// up or slowing down favours neither. In those rounds every key, the
// gateway's and the bare proxy's, is answered from one bucket that never
// runs dry with the same rate-limit headers, so both forward the same
// answers and the gateway observes them as in the proof run. It reports
// each pair's gateway/bare ratio of requests/s and of CPU per request
// (each server's CPU time over the timed part of its round, warm-up left
// out) with their medians, and the ratio the CPU per request of server,
// load driver and fake upstream together implies on idle cores. Then a
// fifth as many pairs with nothing to observe (keys unlimited, no
// rate-limit headers for either). This machine's speed drifts within
// minutes; the median of the pairs' ratios is the number to read, CPU per
// request the steadier one.
//
//	go run ./gateway/loadtest -quota 30s -round 3s

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

const (
	quotaKeyPrefix = "sk-ant-api03-loadtest-quota-"
	quotaCost      = 50 // tokens per request
)

// quotaKeys are the three keys' names and their shares of the total refill.
var quotaKeys = []struct {
	name  string
	share float64
}{{"small", 0.08}, {"big1", 0.46}, {"big2", 0.46}}

func quotaKey(name string) string { return quotaKeyPrefix + name + "-000000000000000000000000" }

// bucket is one key's token bucket and what it answered.
type bucket struct {
	capacity, rate, left float64 // tokens, tokens/s, tokens
	last                 time.Time
	served, rejected     int
	low                  float64 // the fewest tokens left after an answer
}

// quotaUpstream is a fake Anthropic that counts each quota key's tokens
// down. While limited, the bare proxy's key is answered the same way (same
// lock, same rate-limit headers) from a bucket that never runs dry, so the
// bare proxy forwards the same answers the gateway observes. Other keys
// the loadtest knows are served without counting; unknown keys get 401.
type quotaUpstream struct {
	window  time.Duration // a bucket refills from empty in this long
	mu      sync.Mutex
	keys    map[string]*bucket // by key
	bare    *bucket            // keyGood's while limited
	limited bool               // false while calibrating: serve all, no headers
	blind   bool               // no rate-limit headers on success
	endless bool               // the quota keys answered like the bare key, from its bucket (the throughput rounds)
}

func newQuotaUpstream(window time.Duration, blind bool) *quotaUpstream {
	q := &quotaUpstream{window: window, keys: map[string]*bucket{}, blind: blind}
	for _, k := range quotaKeys {
		q.keys[quotaKey(k.name)] = &bucket{}
	}
	return q
}

// size gives the buckets a total refill of perSecond tokens a second, full.
func (q *quotaUpstream) size(perSecond float64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	for _, k := range quotaKeys {
		b := q.keys[quotaKey(k.name)]
		b.rate = perSecond * k.share
		b.capacity = b.rate * q.window.Seconds()
		*b = bucket{capacity: b.capacity, rate: b.rate, left: b.capacity, low: b.capacity, last: now}
	}
	const endless = 1e15
	q.bare = &bucket{capacity: endless, rate: endless, left: endless, low: endless, last: now}
	q.limited = true
}

func (q *quotaUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	key := r.Header.Get("x-api-key")
	q.mu.Lock()
	b, ok := q.keys[key]
	if (key == keyGood || ok && q.endless) && q.limited {
		b, ok = q.bare, true
	}
	if !ok || !q.limited {
		q.mu.Unlock()
		if ok {
			r.Header.Set("x-api-key", keyGood) // calibrating: served like the bare proxy's key
		}
		upstream(w, r)
		return
	}
	now := time.Now()
	b.left = min(b.capacity, b.left+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	h := w.Header()
	h.Set("content-type", "application/json")
	if b.left < quotaCost {
		b.rejected++
		wait := time.Duration((quotaCost - b.left) / b.rate * float64(time.Second))
		q.mu.Unlock()
		h.Set("retry-after", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		h.Set("anthropic-ratelimit-tokens-limit", strconv.Itoa(int(b.capacity)))
		h.Set("anthropic-ratelimit-tokens-remaining", "0")
		w.WriteHeader(429)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"out of tokens"}}`)
		return
	}
	b.left -= quotaCost
	b.served++
	b.low = min(b.low, b.left)
	left, capacity := b.left, b.capacity
	full := now.Add(time.Duration((capacity - left) / b.rate * float64(time.Second)))
	q.mu.Unlock()
	if !q.blind {
		h.Set("anthropic-ratelimit-tokens-limit", strconv.Itoa(int(capacity)))
		h.Set("anthropic-ratelimit-tokens-remaining", strconv.Itoa(int(left)))
		h.Set("anthropic-ratelimit-tokens-reset", full.UTC().Format(time.RFC3339))
	}
	io.WriteString(w, `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"Hello there, nice to meet you!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":25}}`)
}

// newQuotaGateway builds a gateway whose main agent holds the three quota
// keys (no explicit order: the built-in policy picks by headroom, round
// robin among equals).
func newQuotaGateway(ctx context.Context, upstreamURL string) (http.Handler, func(), error) {
	gw, done, err := anthropicGateway(ctx, upstreamURL, true, func(p *store.Profiles) error {
		for _, k := range quotaKeys {
			p.Profiles["anthropic:"+k.name] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: quotaKey(k.name)}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return gw, done, nil
}

// policyStats reads the policy's decision counters from the gateway's
// /metrics (opensoul_policy_decisions_total, _evaluations_total).
func policyStats(s *server) (policy.Stats, error) {
	var st policy.Stats
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "opensoul_policy_decisions_total":
			st.Decisions, found = uint64(n), found+1
		case "opensoul_policy_evaluations_total":
			st.Evaluations, found = uint64(n), found+1
		}
	}
	if found != 2 {
		return st, fmt.Errorf("%s/metrics: no opensoul_policy_decisions_total and _evaluations_total", s.url)
	}
	return st, sc.Err()
}

// pairResult is one round of the throughput comparison: the gateway and
// the bare proxy each driven for the same time, one right after the other.
type pairResult struct {
	g, b      result
	bareFirst bool
	rps, cpu  float64 // gateway ÷ bare: req/s, the server's CPU per request
	// bare ÷ gateway CPU per request of the server, the load driver and
	// the fake upstream together: the req/s ratio the CPU costs imply on a
	// machine whose cores do nothing else (every request here is CPU bound).
	implied float64
}

func newPair(g, b result, bareFirst bool) pairResult {
	p := pairResult{g: g, b: b, bareFirst: bareFirst}
	if b.rps > 0 {
		p.rps = g.rps / b.rps
	}
	if b.cpuPer() > 0 {
		p.cpu = float64(g.cpuPer()) / float64(b.cpuPer())
	}
	if g.allPer() > 0 {
		p.implied = float64(b.allPer()) / float64(g.allPer())
	}
	return p
}

// median of xs (xs is sorted in place).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// pairSummary prints each round and the medians of the ratios.
func pairSummary(label string, ps []pairResult) (rpsMedian float64) {
	fmt.Printf("%-5s %-13s | %-22s | %-22s | %s\n", "round", "order", "gateway req/s  cpu/req", "bare    req/s  cpu/req", "gateway/bare req/s, cpu/req; req/s the CPU implies")
	var rps, cpu, implied []float64
	var gs, bs []result
	for i, p := range ps {
		order := "gateway, bare"
		if p.bareFirst {
			order = "bare, gateway"
		}
		fmt.Printf("%5d %-13s | %13.0f %8s | %13.0f %8s | %.2fx, %.2fx; %.2fx\n", i+1, order, p.g.rps, us(p.g.cpuPer()), p.b.rps, us(p.b.cpuPer()), p.rps, p.cpu, p.implied)
		rps, cpu, implied = append(rps, p.rps), append(cpu, p.cpu), append(implied, p.implied)
		gs, bs = append(gs, p.g), append(bs, p.b)
	}
	lo, hi := slices.Min(rps), slices.Max(rps)
	g, b := merge(gs), merge(bs)
	rpsMedian = median(rps)
	fmt.Printf("%s: median gateway/bare %.2fx req/s (rounds %.2f–%.2f), median %.2fx cpu/req; all rounds: gateway %.0f req/s, p50 %s, p99 %s, cpu %s/req vs bare %.0f req/s, p50 %s, p99 %s, cpu %s/req\n",
		label, rpsMedian, lo, hi, median(cpu), g.rps, us(g.p50), us(g.p99), us(g.cpuPer()), b.rps, us(b.p50), us(b.p99), us(b.cpuPer()))
	fmt.Printf("%s: counting the load driver and fake upstream too (this process: %s/req beside the gateway, %s beside bare), the CPU per request implies gateway/bare %.2fx req/s on cores that do nothing else (median of rounds)\n",
		label, us(g.self/time.Duration(max(1, g.n))), us(b.self/time.Duration(max(1, b.n))), median(implied))
	return rpsMedian
}

// runQuota is the proof run: first the gateway alone for dur, continuously
// (the 429s per key, the decision cache's hit rate, the load), then the
// throughput comparison: rounds of -round through the gateway, each paired
// with a round of the same length through the bare proxy at the same 32
// connections, right before or after it (the order alternates, so a
// machine speeding up or slowing down during a pair favours neither). In
// those rounds every key is answered from one bucket that never runs dry,
// with the same rate-limit headers, so both forward the same answers and
// the gateway observes every one as in the proof run; the proof run's
// counts are not touched by them.
func runQuota(dur time.Duration, margin float64, window, round time.Duration, blind bool) error {
	if margin <= 0 {
		return fmt.Errorf("-margin %v: want a positive factor", margin)
	}
	if window <= 0 {
		return fmt.Errorf("-window %v: want a positive duration", window)
	}
	if round <= 0 {
		return fmt.Errorf("-round %v: want a positive duration", round)
	}
	q := newQuotaUpstream(window, blind)
	upURL, stopUp := listen(q)
	defer stopUp()
	bare, err := spawn("bare", upURL)
	if err != nil {
		return err
	}
	defer bare.stop()
	gw, err := spawn("quota", upURL)
	if err != nil {
		return err
	}
	defer gw.stop()
	const conns = 32
	bareRun := func(d time.Duration) result { return bare.driveOn(bare.url, keyGood, conns, d) }
	gwRun := func(d time.Duration) result { return gw.driveOn(gw.url+"/anthropic", gwToken, conns, d) }
	n := max(1, int((dur+round/2)/round))
	per := dur / time.Duration(n)
	pairs := func(n int) []pairResult {
		var ps []pairResult
		for i := range n {
			var g, b result
			bareFirst := i%2 == 1
			if bareFirst {
				b, g = bareRun(per), gwRun(per)
			} else {
				g, b = gwRun(per), bareRun(per)
			}
			ps = append(ps, newPair(g, b, bareFirst))
		}
		return ps
	}

	calib := gwRun(3 * time.Second)
	q.size(margin * calib.rps * quotaCost)
	fmt.Printf("OpenSoul quota proof: %d CPUs, 3 keys, %d conns, json, %s through the gateway; then %d rounds of %s each through the gateway and the bare proxy, alternating; loopback only\n",
		runtime.NumCPU(), conns, dur, n, per)
	fmt.Printf("calibration: the gateway served %.0f req/s with unlimited keys; buckets refill %.0f tokens/s in all (%.2fx), %d tokens a request, window %s\n",
		calib.rps, margin*calib.rps*quotaCost, margin, quotaCost, window)
	if blind {
		fmt.Println("blind: no rate-limit headers on success; the gateway sees only the 429s")
	}
	before, err := policyStats(gw)
	if err != nil {
		return err
	}
	g := gwRun(dur)
	after, err := policyStats(gw)
	if err != nil {
		return err
	}
	q.mu.Lock()
	var could float64 // tokens the keys could pay during the run: full buckets plus their refill
	for _, b := range q.keys {
		could += b.capacity + b.rate*g.secs
	}
	fmt.Printf("the run asked for %.0f tokens; the keys could pay %.0f: load %.2f of what they hold (above 1, 429s are unavoidable)\n",
		float64(g.n*quotaCost), could, float64(g.n*quotaCost)/could)
	fmt.Printf("%-6s %8s %8s %8s %10s %s\n", "key", "refill/s", "capacity", "served", "429s", "fewest tokens left after an answer")
	for _, k := range quotaKeys {
		bk := q.keys[quotaKey(k.name)]
		fmt.Printf("%-6s %8.0f %8.0f %8d %10d %.0f (%.0f%%)\n", k.name, bk.rate, bk.capacity, bk.served, bk.rejected, bk.low, 100*bk.low/bk.capacity)
	}
	q.endless = true // the throughput rounds: every key answered like the bare proxy's
	q.mu.Unlock()
	decisions, evals := after.Decisions-before.Decisions, after.Evaluations-before.Evaluations
	hit := 0.0
	if decisions > 0 {
		hit = 100 * float64(decisions-evals) / float64(decisions)
	}
	fmt.Printf("clients: %d requests, %d not 200 (%.0f req/s, cpu %s/req)\n", g.n, g.errs, g.rps, us(g.cpuPer()))
	fmt.Printf("decision cache: %d decisions, %d evaluated, hit rate %.2f%%\n", decisions, evals, hit)
	fmt.Printf("\nthroughput with observation on (every key answered from a bucket that never runs dry, with the same rate-limit headers for both):\n")
	pairSummary("observing", pairs(n))

	// Nothing to observe: no rate-limit headers on any answer, for either.
	q.mu.Lock()
	q.limited = false
	q.mu.Unlock()
	fmt.Printf("\nthe same with nothing to observe (keys unlimited, no rate-limit headers on any answer):\n")
	pairSummary("nothing to observe", pairs(max(1, n/5)))
	return nil
}
