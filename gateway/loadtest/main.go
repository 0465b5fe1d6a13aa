// Command loadtest measures what the gateway costs over a bare reverse
// proxy. On loopback only it starts a fake Anthropic upstream (in this
// process) and, each in a child process of its own so that its memory can
// be read, a bare httputil.ReverseProxy with a tuned transport and the
// gateway (real policy engine, real provider modules, a temp state dir with
// two profiles). It drives each with the same closed-loop load — 1 and 32
// connections, JSON and SSE streaming (time to first byte) — alternating
// bare and gateway in rounds so that drift on a shared machine hits both,
// then once more with one of the two profiles answering 429, and prints
// requests/s, p50/p99 and each server's CPU time per request side by side,
// and the gateway's RSS under 64 connections. Every cell is bounded in time
// and request count. On a shared machine latency is noisy; CPU per request
// is the steadier measure of what the gateway adds.
//
//	go run ./gateway/loadtest [-d 3s] [-max 300000]
//
// With -profiles N it measures scale instead: the gateway holds N API-key
// profiles of one provider (no explicit order, so the policy round-robins
// over all of them) and each mode is driven at 32 connections, JSON, in
// alternating rounds with the bare proxy, printing requests/s and each
// server's CPU time per request side by side:
//
//   - cached: the decision cache on, every request in one session (pinned
//     to its profile, so the decision stays cached);
//
//   - 32 sessions: each connection a session of its own, each pinned to
//     its own profile; their lastUsed times (recorded once a second per
//     profile) reorder the profiles, so decisions are often recomputed;
//
//   - no session: no session header: such requests rotate over the
//     profiles, so their facts change with every request;
//
//   - churn (-churn): the facts change on every request. Each connection
//     is a session of its own, pinned to its own profile, and the gateway's
//     clock moves a second per reading, so every success records a new
//     lastUsed. (The built-in policy no longer reads lastUsed — the gateway
//     rotates among equal-rank candidates itself — so these decisions stay
//     cached now; cache off is the uncached case.)
//
//   - new session (with -churn): every request names a session never seen
//     before. With the built-in policy alone a session without an auto pin
//     decides as a sessionless request (the key leaves its id out, see
//     sessionRead in policy/cache.go), so this measures starting sessions:
//     the pin each first answer records and the session bookkeeping; with
//     a user policy loaded every such request is an uncached decision;
//
//   - cache off (-nocache): the decision cache turned off.
//
//     go run ./gateway/loadtest -profiles 1000 -churn -nocache -d 3s
//
//     go run ./gateway/loadtest -spread 4 [-d 3s]   # session-less traffic over 4 keys: each key's share
//
// With -quota 30s it gives three keys token quotas that the fake upstream
// counts down and reports in Anthropic's rate-limit headers, and reports
// per key the requests served and the 429s, the decision cache's hit rate
// and the throughput beside the bare proxy, in alternating rounds of equal
// length (-round, 3s) with the ratio of each round and their median (see
// quota.go).
//
// With -soak 10m it runs the gateway for that long under good, 429, 401
// and 5xx keys, hostile bodies, slow clients and CLI writers, and reports
// RSS, goroutines, open files, outcomes and lost state writes (see soak.go).
// With LOADTEST_CPUPROFILE=FILE set, each gateway child writes its CPU
// profile to FILE (the -profiles children to FILE.scale, FILE.scale-churn,
// …, the bare proxy's child to FILE.bare; -only picks the modes to measure, e.g. -only cached).
// With LOADTEST_HEAPPROFILE=FILE set, the gateway's child process writes
// its heap profile to FILE every 30 s and when it stops (the bare proxy's
// child to FILE.bare).
//
// With -firstreq BINARY it times the first request after /readyz of the
// built binary with an empty module cache against the next 99 (firstreq.go).
//
// With -attack bodies it measures the gateway's memory under hostile
// request bodies instead (see attack.go):
//
//	go run ./gateway/loadtest -attack bodies [-conns 40] [-rounds 4]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"
)

const (
	keyGood  = "sk-ant-api03-loadtest-good-0000000000000000000000000000"
	keyGood2 = "sk-ant-api03-loadtest-second-111111111111111111111111111"
	keyBusy  = "sk-ant-api03-loadtest-busy-2222222222222222222222222222"
	gwToken  = "osk-loadtest-token"
	reqBody  = `{"model":"claude-sonnet-5","max_tokens":256,"messages":[{"role":"user","content":"Say hello in one short sentence, please."}]}`
	streamRq = `{"model":"claude-sonnet-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Say hello in one short sentence, please."}]}`
)

func main() {
	dur := flag.Duration("d", 3*time.Second, "load duration per cell (split in rounds between bare and gateway)")
	maxReq := flag.Int("max", 300_000, "at most this many requests per cell")
	serve := flag.String("serve", "", "internal: run one server (bare, gateway, gateway429) in this child process")
	up := flag.String("upstream", "", "internal: the upstream URL for -serve")
	profiles := flag.Int("profiles", 0, "measure scale: the gateway holds this many profiles (see the package doc); with -firstreq: the main agent holds this many keys")
	churn := flag.Bool("churn", false, "with -profiles: also measure facts that change on every request and a session started by every request")
	nocache := flag.Bool("nocache", false, "with -profiles: also measure with the decision cache off")
	firstReq := flag.String("firstreq", "", "instead: time the first request after /readyz of this built opensoul binary, empty module cache (see firstreq.go)")
	defModel := flag.Bool("defaultmodel", false, "with -firstreq: configure the requested model as agents.defaults.model.primary (the warm-up then decides for it)")
	only := flag.String("only", "", "with -profiles: measure only these modes (comma-separated: cached, sessions, nosession, churn, newsession, nocache)")
	spreadKeys := flag.Int("spread", 0, "instead: check that requests without a session spread over this many keys (4: each 15-35%)")
	attack := flag.String("attack", "", "measure memory under hostile callers instead: bodies (see attack.go)")
	conns := flag.Int("conns", 40, "with -attack: connections per round; with -crash: clients")
	rounds := flag.Int("rounds", 4, "with -attack: rounds of declared-length bodies; with -firstreq: gateway starts; with -crash: kills")
	hold := flag.Duration("hold", 3*time.Second, "with -attack: how long each round holds its connections")
	soak := flag.Duration("soak", 0, "instead: soak the gateway for this long under mixed traffic and CLI writers (see soak.go)")
	state := flag.String("state", "", "internal: the state dir for -serve soak")
	quota := flag.Duration("quota", 0, "instead: three keys with token quotas at 32 conns for this long (30s for the proof; see quota.go)")
	margin := flag.Float64("margin", 1.5, "with -quota: the keys together refill this many times what the gateway served in calibration")
	window := flag.Duration("window", 10*time.Second, "with -quota: a key's bucket refills from empty in this long")
	round := flag.Duration("round", 3*time.Second, "with -quota: the length of each round; gateway and bare proxy rounds alternate (see quota.go)")
	blind := flag.Bool("blind", false, "with -quota: the upstream sends no rate-limit headers on success (the gateway cannot see headroom)")
	crash := flag.String("crash", "", "instead: SIGKILL this built opensoul binary under load -rounds times and check its usage store (see crash.go)")
	flag.Parse()
	var err error
	switch {
	case *spreadKeys > 0:
		err = spread(*spreadKeys, *dur)
	case *serve != "":
		err = child(*serve, *up, *profiles, *state)
	case *firstReq != "":
		err = runFirstRequest(*firstReq, *rounds, *defModel, *profiles)
	case *crash != "":
		err = runCrash(*crash, *rounds, *conns, *dur)
	case *soak > 0:
		err = runSoak(*soak)
	case *attack != "":
		err = runAttack(*attack, *conns, *rounds, *hold)
	case *quota > 0:
		err = runQuota(*quota, *margin, *window, *round, *blind)
	case *profiles > 0:
		err = runScale(*dur, *maxReq, *profiles, *churn, *nocache, *only)
	default:
		err = run(*dur, *maxReq)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// child serves one proxy on loopback, prints its address and runs until
// its stdin closes (the parent exited).
func child(kind, upstreamURL string, profiles int, state string) error {
	var h http.Handler
	switch kind {
	case "soak":
		gw, closeGW, err := newSoakGateway(context.Background(), upstreamURL, state)
		if err != nil {
			return err
		}
		defer closeGW()
		h = gw
	case "bare":
		h = bareProxy(upstreamURL)
	case "bare-first": // -firstreq: /readyz answered here, not sent upstream
		mux := http.NewServeMux()
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
		mux.Handle("/", bareProxy(upstreamURL))
		h = mux
	case "scale", "scale-nocache", "scale-churn":
		gw, closeGW, err := newScaleGateway(context.Background(), upstreamURL, profiles, kind)
		if err != nil {
			return err
		}
		defer closeGW()
		h = gw
	case "quota":
		gw, closeGW, err := newQuotaGateway(context.Background(), upstreamURL)
		if err != nil {
			return err
		}
		defer closeGW()
		h = gw
	case "gateway", "gateway429":
		first := keyGood
		if kind == "gateway429" {
			first = keyBusy
		}
		gw, closeGW, err := newGateway(context.Background(), upstreamURL, first)
		if err != nil {
			return err
		}
		defer closeGW()
		h = gw
	default:
		return fmt.Errorf("unknown -serve %q", kind)
	}
	if path := os.Getenv("LOADTEST_CPUPROFILE"); path != "" && kind != "soak" {
		if kind != "gateway" {
			path += "." + kind // one file per child (the bare proxy's too, to compare)
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv("LOADTEST_HEAPPROFILE"); path != "" {
		if strings.HasPrefix(kind, "bare") {
			path += "." + kind // beside the gateway's, not over it
		}
		defer writeHeapProfiles(path)()
	}
	addr, stop := listen(h)
	defer stop()
	fmt.Println(addr)
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// writeHeapProfiles writes the child's heap profile to path every 30 s
// (replacing it) until the returned func is called: what holds the memory
// of a long soak (go tool pprof -sample_index=inuse_space path).
func writeHeapProfiles(path string) (stop func()) {
	write := func() {
		f, err := os.Create(path + ".tmp")
		if err != nil {
			return
		}
		runtime.GC()
		pprof.WriteHeapProfile(f)
		f.Close()
		os.Rename(path+".tmp", path)
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				write()
			}
		}
	}()
	return func() { close(done); write() }
}

func run(dur time.Duration, max int) error {
	upURL, stopUp := listen(http.HandlerFunc(upstream))
	defer stopUp()
	f := &fleet{upstreamURL: upURL}
	defer f.stop()
	bare, err := f.start("bare")
	if err != nil {
		return err
	}
	gw, err := f.start("gateway")
	if err != nil {
		return err
	}
	busy, err := f.start("gateway429")
	if err != nil {
		return err
	}

	idle, _ := gw.rssMB()
	bareIdle, _ := bare.rssMB()
	fmt.Printf("OpenSoul gateway load harness: %d CPUs, %s per cell in %d alternating rounds, loopback only\n", runtime.NumCPU(), dur, rounds)
	fmt.Printf("%-8s %5s | %-36s | %-36s | %s\n", "mode", "conns", "bare proxy req/s   p50    p99 cpu/req", "gateway    req/s   p50    p99 cpu/req", "gateway vs bare")
	row := func(mode string, conns int, b, g result) {
		fmt.Printf("%-8s %5d | %8.0f %8s %8s %6s | %8.0f %8s %8s %6s | %5.1f%% req/s, p50 %+dµs, cpu %+dµs/req\n", mode, conns,
			b.rps, us(b.p50), us(b.p99), us(b.cpuPer()), g.rps, us(g.p50), us(g.p99), us(g.cpuPer()),
			100*g.rps/b.rps, (g.p50 - b.p50).Microseconds(), (g.cpuPer() - b.cpuPer()).Microseconds())
		if b.errs+g.errs > 0 {
			fmt.Printf("          errors: bare %d, gateway %d\n", b.errs, g.errs)
		}
	}
	var good32 []result
	for _, stream := range []bool{false, true} {
		mode := "json"
		if stream {
			mode = "sse-ttfb"
		}
		for _, conns := range []int{1, 32} {
			b, g := pair(bare, gw, stream, conns, dur, max)
			row(mode, conns, b, g)
		}
	}
	// 429: alternate the all-good and the one-busy gateway the same way.
	var busies []result
	for range rounds {
		good32 = append(good32, drive(gw.url+"/anthropic", gwToken, false, 32, dur/rounds, max/rounds))
		busies = append(busies, drive(busy.url+"/anthropic", gwToken, false, 32, dur/rounds, max/rounds))
	}
	good, r429 := merge(good32), merge(busies)
	fmt.Printf("\none of two profiles answers 429 (32 conns, json): %.0f req/s p50 %s p99 %s vs all good %.0f req/s = %.1f%% (errors %d)\n",
		r429.rps, us(r429.p50), us(r429.p99), good.rps, 100*r429.rps/good.rps, r429.errs)
	var under64 atomic.Int64 // highest RSS sampled under 64-connection load, KB
	sampling := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-t.C:
				if cur, _ := gw.rssMB(); int64(cur*1024) > under64.Load() {
					under64.Store(int64(cur * 1024))
				}
			}
		}
	}()
	r64 := drive(gw.url+"/anthropic", gwToken, true, 64, dur, max)
	r64j := drive(gw.url+"/anthropic", gwToken, false, 64, dur, max)
	close(sampling)
	cur, peak := gw.rssMB()
	bareCur, barePeak := bare.rssMB()
	fmt.Printf("64 conns through the gateway: sse %.0f req/s, json %.0f req/s\n", r64.rps, r64j.rps)
	fmt.Printf("RSS: gateway %.1f MB at start, %.1f MB max under 64 conns, %.1f MB after; peak since start %.1f MB (module compilation included)\n",
		idle, float64(under64.Load())/1024, cur, peak)
	fmt.Printf("     bare proxy %.1f MB at start, %.1f MB after, peak %.1f MB\n", bareIdle, bareCur, barePeak)
	return nil
}
