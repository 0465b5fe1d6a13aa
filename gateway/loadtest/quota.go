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
// Then it drives 32 connections for the given time and reports, per key,
// the requests served and the 429s received, the decision cache's hit rate
// over the run (opensoul_policy_decisions_total and _evaluations_total in
// the gateway's /metrics), and the throughput against the bare proxy over
// the same upstream (a sixth of the run's time before and after it, its
// key answered like the quota keys from a bucket that never runs dry) and
// against the gateway itself with nothing to observe (the keys unlimited
// and no rate-limit headers, a sixth of the run after that).
// Numbers from a shared machine are noisy; CPU per request is the steadier
// measure.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
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
	if key == keyGood && q.limited {
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

func runQuota(dur time.Duration, margin float64, window time.Duration, blind bool) error {
	if margin <= 0 {
		return fmt.Errorf("-margin %v: want a positive factor", margin)
	}
	if window <= 0 {
		return fmt.Errorf("-window %v: want a positive duration", window)
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
	bareRun := func(d time.Duration) result {
		return bare.measure(func() result { return drive(bare.url, keyGood, false, conns, d, math.MaxInt) })
	}
	gwRun := func(d time.Duration) result {
		return gw.measure(func() result { return drive(gw.url+"/anthropic", gwToken, false, conns, d, math.MaxInt) })
	}
	calib := gwRun(3 * time.Second)
	q.size(margin * calib.rps * quotaCost)
	fmt.Printf("OpenSoul quota proof: %d CPUs, 3 keys, %d conns, json, %s; loopback only\n", runtime.NumCPU(), conns, dur)
	fmt.Printf("calibration: the gateway served %.0f req/s with unlimited keys; buckets refill %.0f tokens/s in all (%.2fx), %d tokens a request, window %s\n",
		calib.rps, margin*calib.rps*quotaCost, margin, quotaCost, window)
	if blind {
		fmt.Println("blind: no rate-limit headers on success; the gateway sees only the 429s")
	}
	b1 := bareRun(dur / 6)
	before, err := policyStats(gw)
	if err != nil {
		return err
	}
	g := gwRun(dur)
	after, err := policyStats(gw)
	if err != nil {
		return err
	}
	b2 := bareRun(dur / 6)
	q.mu.Lock()
	q.limited = false // the keys unlimited, no headers: nothing to observe
	q.mu.Unlock()
	off := gwRun(dur / 6)
	b := merge([]result{b1, b2})
	b.cpu = b1.cpu + b2.cpu

	q.mu.Lock()       // (limited is false now; the buckets stopped counting)
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
	q.mu.Unlock()
	decisions, evals := after.Decisions-before.Decisions, after.Evaluations-before.Evaluations
	hit := 0.0
	if decisions > 0 {
		hit = 100 * float64(decisions-evals) / float64(decisions)
	}
	fmt.Printf("clients: %d requests, %d not 200\n", g.n, g.errs)
	fmt.Printf("decision cache: %d decisions, %d evaluated, hit rate %.2f%%\n", decisions, evals, hit)
	fmt.Printf("throughput: gateway %.0f req/s (p50 %s, p99 %s, cpu %s/req) vs bare proxy %.0f req/s (p50 %s, cpu %s/req) = %.1f%%\n",
		g.rps, us(g.p50), us(g.p99), us(g.cpuPer()), b.rps, us(b.p50), us(b.cpuPer()), 100*g.rps/b.rps)
	fmt.Printf("            the gateway with nothing to observe (no rate-limit headers, %s after the run): %.0f req/s, cpu %s/req\n",
		dur/6, off.rps, us(off.cpuPer()))
	return nil
}
